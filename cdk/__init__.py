"""CDK for Terraform bindings of the rtserve provider and the constructs built on them.

    from rtserve.cdk import (AccessControl, ComputeConfig, ModelEndpoint, PermissionLevel, RateLimit, RtserveStack,
                     ServedEntity, ServingEndpoint, ServingEndpointPermissions)

    stack = RtserveStack(app, "production", host="http://127.0.0.1:8080")
    ModelEndpoint(stack, "iris", model_name="iris-classifier",
                  production=ComputeConfig.medium(), promotions={"Production": "1"})
    iris_ab = ServingEndpoint(stack, "iris-ab", name="iris-ab",
                              served_entities=[ServedEntity("iris-classifier", "1", name="blue"),
                                               ServedEntity("iris-classifier", "2", name="green")],
                              traffic={"blue": 90, "green": 10}, rate_limits=[RateLimit(calls=100)])
    ServingEndpointPermissions(stack, "iris-ab-acl", endpoint=iris_ab,
                               access_control=[AccessControl.user("checkout", PermissionLevel.CAN_QUERY)])

`cdk.rtserve` holds the level-1 bindings (one class per resource and data source).
"""

from rtserve.cdk.model_endpoint import ComputeConfig, ModelEndpoint, WorkloadSize
from rtserve.cdk.serving_endpoint import (
    EmailNotifications,
    InferenceTable,
    RateLimit,
    ServedEntity,
    ServingEndpoint,
)
from rtserve.cdk.serving_endpoint_permissions import AccessControl, PermissionLevel, ServingEndpointPermissions
from rtserve.cdk.stack import RtserveStack

__all__ = [
    "AccessControl",
    "ComputeConfig",
    "EmailNotifications",
    "InferenceTable",
    "ModelEndpoint",
    "PermissionLevel",
    "RateLimit",
    "RtserveStack",
    "ServedEntity",
    "ServingEndpoint",
    "ServingEndpointPermissions",
    "WorkloadSize",
]
