"""`ModelEndpoint`: serve one registered model, with typed compute per stage and version promotions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk._props import check_placement, is_duration, unresolved
from rtserve.cdk.rtserve import (
    ModelServing,
    ModelServingComputeConfig,
    ModelServingTimeouts,
    ModelVersionStage,
    ModelVersionStageTimeouts,
    RtserveProvider,
)
from rtserve.spec import (
    DEFAULT_SCALE_TO_ZERO,
    DEFAULT_WORKLOAD_SIZE,
    PRODUCTION,
    SERVING_STAGES,
    STAGING,
    SpecError,
    WorkloadSize,
    check_version_number,
    check_workload_size,
)

__all__ = ["ComputeConfig", "ModelEndpoint", "WorkloadSize"]

MODEL_NAME_REQUIRED = "ModelEndpoint: model_name must be a non-empty string; got {value!r}"
COMPUTE_TYPE = "ModelEndpoint: {stage} must be a ComputeConfig (e.g. ComputeConfig.small()); got {value!r}"
PROMOTION_STAGE = f"ModelEndpoint: promotions keys must be {' or '.join(map(repr, SERVING_STAGES))}; got {{stage!r}}"
PROMOTION_VERSION = "ModelEndpoint: promotions[{stage!r}] must be a model version number such as '2'; got {version!r}"
TIMEOUT_FORMAT = "ModelEndpoint: timeout must be a duration such as '90s', '20m' or '1h30m'; got {value!r}"
WORKLOAD_SIZE = "ComputeConfig: {field} must be {rule}; got {value!r}"


@dataclass(frozen=True)
class ComputeConfig:
    """Compute for the versions in one stage.

    :param workload_size: how many requests are served in parallel. @default WorkloadSize.SMALL (as the backend)
    :param scale_to_zero_enabled: release every replica when idle; the next request waits for a cold start.
        @default False (as the backend)
    :param placement_node_labels: Ray engine only: labels a Ray node must carry (each equal) for the stage's
        replicas to run there (docs/ray.md). @default None: any node
    :param placement_resources: Ray engine only: custom Ray resources each replica reserves on its node,
        e.g. ``{"licensed": 1}``. @default None: none
    """

    workload_size: WorkloadSize | str = WorkloadSize(DEFAULT_WORKLOAD_SIZE)
    scale_to_zero_enabled: bool = DEFAULT_SCALE_TO_ZERO
    placement_node_labels: Mapping[str, str] | None = dataclass_field(default=None, hash=False)
    placement_resources: Mapping[str, int | float] | None = dataclass_field(default=None, hash=False)

    def __post_init__(self) -> None:
        try:
            size = WorkloadSize(check_workload_size(self.workload_size))
        except SpecError as error:
            raise ValueError(WORKLOAD_SIZE.format(field=error.field, rule=error.rule, value=error.value)) from None
        object.__setattr__(self, "workload_size", size)
        check_placement("ComputeConfig", self.placement_node_labels, self.placement_resources)

    @staticmethod
    def small(*, scale_to_zero: bool = False) -> ComputeConfig:
        return ComputeConfig(WorkloadSize.SMALL, scale_to_zero)

    @staticmethod
    def medium(*, scale_to_zero: bool = False) -> ComputeConfig:
        return ComputeConfig(WorkloadSize.MEDIUM, scale_to_zero)

    @staticmethod
    def large(*, scale_to_zero: bool = False) -> ComputeConfig:
        return ComputeConfig(WorkloadSize.LARGE, scale_to_zero)

    def _for_stage(self, stage: str) -> ModelServingComputeConfig:
        return ModelServingComputeConfig(
            stage=stage,
            workload_size=WorkloadSize(self.workload_size).value,
            scale_to_zero_enabled=self.scale_to_zero_enabled,
            placement_node_labels=dict(self.placement_node_labels) if self.placement_node_labels else None,
            placement_resources=dict(self.placement_resources) if self.placement_resources else None,
        )


class ModelEndpoint(Construct):
    """Serving of one registered model: compute per stage, and which version holds which stage.

    :param model_name: the registered model to serve (required).
    :param staging: compute of the Staging stage. @default None: not managed here (the backend gives
        every stage Small, no scale to zero).
    :param production: compute of the Production stage. @default None: not managed here.
    :param promotions: stage -> version, e.g. ``{"Production": "1", "Staging": "2"}``; a promotion is a
        change of one number. @default None: no version is moved.
    :param archive_existing_versions: archive the other versions of a stage when promoting into it.
        @default False (as Databricks: the replaced version is archived once the new one serves).
    :param comment: recorded with each promotion in the model's events. @default None
    :param wait_for_ready: deploys return once every stage serves its version. @default True
    :param timeout: how long a deploy waits for readiness. @default "20m"
    :param disable_on_destroy: destroying disables serving for the model; set False when several
        stacks share the model (one per stage). @default True
    :param provider: the rtserve provider to use. @default the stack's default provider
    """

    def __init__(
        self,
        scope: Construct,
        id: str,  # noqa: A002 - the constructs convention
        *,
        model_name: str,
        staging: ComputeConfig | None = None,
        production: ComputeConfig | None = None,
        promotions: Mapping[str, str | int] | None = None,
        archive_existing_versions: bool = False,
        comment: str | None = None,
        wait_for_ready: bool = True,
        timeout: str = "20m",
        disable_on_destroy: bool = True,
        provider: RtserveProvider | None = None,
    ) -> None:
        super().__init__(scope, id)
        compute = {STAGING: staging, PRODUCTION: production}
        versions = _validate(model_name, compute, promotions or {}, timeout)

        self.model_name = model_name
        self.resource = ModelServing(
            self,
            "resource",
            registered_model_name=model_name,
            compute_config=[config._for_stage(stage) for stage, config in compute.items() if config is not None],
            wait_for_ready=wait_for_ready,
            disable_on_destroy=disable_on_destroy,
            timeouts=ModelServingTimeouts(create=timeout, update=timeout),
            provider=provider,
        )
        # Promotions wait for serving (so a deploy ends when the stage answers from the new version),
        # and on destroy they are archived before serving is disabled.
        self.promotions: dict[str, ModelVersionStage] = {
            stage: ModelVersionStage(
                self,
                f"promotion-{stage.lower()}",
                name=model_name,
                version=version,
                stage=stage,
                archive_existing_versions=archive_existing_versions,
                comment=comment,
                wait_for_ready=wait_for_ready,
                timeouts=ModelVersionStageTimeouts(create=timeout, update=timeout),
                depends_on=[self.resource],
                provider=provider,
            )
            for stage, version in versions.items()
        }

    # -- read-only attributes --------------------------------------------------------------------
    @property
    def resources(self) -> list[cdktf.TerraformResource]:
        """The serving resource and each promotion: `depends_on=endpoint.resources` waits for all of them
        (cdktf silently drops a construct given to depends_on)."""
        return [self.resource, *self.promotions.values()]

    @property
    def state(self) -> str:
        """ENDPOINT_STATE_READY once deployed (a token, resolved by Terraform)."""
        return self.resource.state

    @property
    def invocation_urls(self) -> cdktf.StringMap:
        return self.resource.invocation_urls

    def url(self, stage: str) -> str:
        """The scoring URL of a stage: `<host>/model-endpoint/<model>/<stage>/invocations`."""
        if stage not in SERVING_STAGES:
            raise ValueError(PROMOTION_STAGE.format(stage=stage))
        return self.resource.invocation_urls.lookup(stage)

    @property
    def staging_url(self) -> str:
        return self.url(STAGING)

    @property
    def production_url(self) -> str:
        return self.url(PRODUCTION)


def _validate(
    model_name: str, compute: Mapping[str, ComputeConfig | None], promotions: Mapping[str, str | int], timeout: str
) -> dict[str, str]:
    """Check every prop before any child exists; return the promotions with versions as strings."""
    if not isinstance(model_name, str) or not (model_name.strip() or unresolved(model_name)):
        raise ValueError(MODEL_NAME_REQUIRED.format(value=model_name))
    for stage, config in compute.items():
        if config is not None and not isinstance(config, ComputeConfig):
            raise TypeError(COMPUTE_TYPE.format(stage=stage.lower(), value=config))
    if not is_duration(timeout):
        raise ValueError(TIMEOUT_FORMAT.format(value=timeout))
    versions = {}
    for stage, version in promotions.items():
        if stage not in SERVING_STAGES:
            raise ValueError(PROMOTION_STAGE.format(stage=stage))
        versions[stage] = version_text(version, PROMOTION_VERSION.format(stage=stage, version=version))
    return versions


def version_text(version: object, message: str) -> str:
    """A model version number as the backend reads it ("2" for 2 or "02"), or a reference; else ValueError(message)."""
    if isinstance(version, str) and unresolved(version):
        return version
    try:
        return check_version_number(version)
    except SpecError:
        raise ValueError(message) from None
