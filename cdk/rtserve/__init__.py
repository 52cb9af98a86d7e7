"""Level-1 bindings of the `rtserve` provider: one class per resource and data source, written by hand.

They follow the shape `cdktf get` generates (module and class names, `TF_RESOURCE_TYPE`, attribute
getters), so generated bindings could replace them without touching the constructs. Inputs are the
provider's attribute names; `None` leaves an attribute out of the synthesized JSON (Terraform then
applies the provider's declared default).
"""

from rtserve.cdk.rtserve.data_rtserve_endpoint_status import DataRtserveEndpointStatus
from rtserve.cdk.rtserve.data_rtserve_model_versions import DataRtserveModelVersions
from rtserve.cdk.rtserve.data_rtserve_version_aliases import DataRtserveVersionAliases
from rtserve.cdk.rtserve.model_serving import ModelServing, ModelServingComputeConfig, ModelServingTimeouts
from rtserve.cdk.rtserve.model_version_stage import ModelVersionStage, ModelVersionStageTimeouts
from rtserve.cdk.rtserve.permissions import Permissions, PermissionsAccessControl
from rtserve.cdk.rtserve.provider import RtserveProvider
from rtserve.cdk.rtserve.serving_endpoint import (
    ServingEndpoint,
    ServingEndpointEmailNotifications,
    ServingEndpointInferenceTableConfig,
    ServingEndpointRateLimits,
    ServingEndpointServedEntities,
    ServingEndpointTimeouts,
    ServingEndpointTrafficConfig,
    ServingEndpointTrafficConfigRoutes,
    ServingEndpointUsageTrackingConfig,
)

__all__ = [
    "DataRtserveEndpointStatus",
    "DataRtserveModelVersions",
    "DataRtserveVersionAliases",
    "ModelServing",
    "ModelServingComputeConfig",
    "ModelServingTimeouts",
    "ModelVersionStage",
    "ModelVersionStageTimeouts",
    "Permissions",
    "PermissionsAccessControl",
    "RtserveProvider",
    "ServingEndpoint",
    "ServingEndpointEmailNotifications",
    "ServingEndpointInferenceTableConfig",
    "ServingEndpointRateLimits",
    "ServingEndpointServedEntities",
    "ServingEndpointTimeouts",
    "ServingEndpointTrafficConfig",
    "ServingEndpointTrafficConfigRoutes",
    "ServingEndpointUsageTrackingConfig",
]
