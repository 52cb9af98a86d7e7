"""The worked example: the demo model served by two stacks, each owning one stage of its endpoint;
the production stack also owns a serving endpoint that sends 10% of its traffic to version 2, with
a rate limit per token, and lets every token query it.

`rtserve deploy` (or `cdktf deploy`) synthesizes this app and applies it. RTSERVE_HOST names the
backend and RTSERVE_TOKEN authenticates at apply time; the token is never written into cdktf.out.
RTSERVE_STATE_DIR, if set, holds the stacks' local Terraform state (default: this directory).
"""

import os

import cdktf

from rtserve.cdk import (
    AccessControl,
    ComputeConfig,
    ModelEndpoint,
    PermissionLevel,
    RateLimit,
    RtserveStack,
    ServedEntity,
    ServingEndpoint,
    ServingEndpointPermissions,
)

HOST = os.environ.get("RTSERVE_HOST", "http://127.0.0.1:8080")
MODEL = os.environ.get("RTSERVE_MODEL", "iris-classifier")
STATE_DIR = os.environ.get("RTSERVE_STATE_DIR")


def state_path(stack: str) -> str | None:
    return os.path.join(os.path.abspath(STATE_DIR), f"terraform.{stack}.tfstate") if STATE_DIR else None


app = cdktf.App()

staging = RtserveStack(app, "staging", host=HOST, state_path=state_path("staging"))
staging_endpoint = ModelEndpoint(
    staging,
    "iris",
    model_name=MODEL,
    staging=ComputeConfig.small(),
    promotions={"Staging": "2"},
    disable_on_destroy=False,  # the production stack serves the same model
)
cdktf.TerraformOutput(staging, "url", value=staging_endpoint.staging_url)

production = RtserveStack(app, "production", host=HOST, state_path=state_path("production"))
production_endpoint = ModelEndpoint(
    production,
    "iris",
    model_name=MODEL,
    production=ComputeConfig.small(),
    promotions={"Production": "1"},
    disable_on_destroy=False,
)
cdktf.TerraformOutput(production, "url", value=production_endpoint.production_url)
canary = ServingEndpoint(
    production,
    "canary",
    name=f"{MODEL}-canary"[:63],
    served_entities=[
        ServedEntity(model=MODEL, version="1", name="current"),
        ServedEntity(model=MODEL, version="2", name="candidate"),
    ],
    traffic={"current": 90, "candidate": 10},
    rate_limits=[RateLimit(calls=600, key="user")],  # per token, per minute
)
ServingEndpointPermissions(
    production,
    "canary-access",
    endpoint=canary,
    access_control=[AccessControl.group("users", PermissionLevel.CAN_QUERY)],  # CAN_VIEW tokens may query it too
)
cdktf.TerraformOutput(production, "canary_url", value=canary.endpoint_url)

app.synth()
