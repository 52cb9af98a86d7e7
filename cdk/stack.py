"""`RtserveStack`: a cdktf stack whose rtserve provider points at one backend."""

from __future__ import annotations

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve import RtserveProvider

HOST_FORMAT = "RtserveStack: host must be a URL starting with http:// or https://; got {value!r}"
TOKEN_IN_CONFIG = (
    "RtserveStack: a literal token would be written into cdk.tf.json. Leave `token` unset and export "
    "RTSERVE_TOKEN when Terraform runs (rtserve deploy, terraform apply, cdktf deploy), or pass a "
    "reference such as a sensitive TerraformVariable."
)


class RtserveStack(cdktf.TerraformStack):
    """A stack configured for one rtserve backend.

    The API token never enters the synthesized configuration: the provider reads RTSERVE_TOKEN from
    the environment of the Terraform run.

    :param host: the backend's base URL, e.g. ``http://127.0.0.1:8080`` (required).
    :param token: only a reference (e.g. ``TerraformVariable(..., sensitive=True).string_value``); a
        literal is refused. @default None: RTSERVE_TOKEN at apply time
    :param state_path: local state file. @default cdktf's, ``terraform.<stack id>.tfstate`` in the
        directory where the app is synthesized. Add another backend (S3Backend, HttpBackend, ...) to
        the stack to keep state elsewhere.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,  # noqa: A002 - the constructs convention
        *,
        host: str,
        token: str | None = None,
        state_path: str | None = None,
    ) -> None:
        if not (
            isinstance(host, str) and (host.startswith(("http://", "https://")) or cdktf.Token.is_unresolved(host))
        ):
            raise ValueError(HOST_FORMAT.format(value=host))
        if token is not None and not cdktf.Token.is_unresolved(token):
            raise ValueError(TOKEN_IN_CONFIG)
        super().__init__(scope, id)
        self.host = host
        self.provider = RtserveProvider(self, "rtserve", host=host, token=token)
        if state_path is not None:
            cdktf.LocalBackend(self, path=state_path)
