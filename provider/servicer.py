"""One change to the `tf` framework's gRPC servicer: every plan goes through `Resource.plan`, with the config.

`tf` 1.2 plans a create by itself (computed attributes get their schema default, nested blocks pass
through untouched) and calls `Resource.plan` only for updates, without the configuration. Declared
defaults inside nested blocks (a compute_config's `workload_size = "Small"`) need both: the create
plan must fill them, and an update must know whether the user set a value or Terraform merely
carried the prior one over (otherwise removing `workload_size = "Medium"` would never go back to
"Small"). Resources get a `PlanContext` whose `config` holds the decoded configuration; `current`
is None for a create. A destroy plan is answered with a null planned state instead of an error.

`provider.main` installs this class in place of `tf.provider.ProviderServicer` before the server
starts (`tf.runner.run_provider` looks the class up at call time).
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import grpc
from tf.gen import tfplugin_pb2 as pb
from tf.iface import PlanContext
from tf.provider import ProviderServicer, _decode_state, _encode_state, _log_errors
from tf.utils import Diagnostics, _to_attribute_path, to_dynamic_value


@dataclass
class ConfiguredPlanContext(PlanContext):
    """A PlanContext that also carries the resource's decoded configuration (None values: not set)."""

    config: dict[str, Any] | None = field(default=None)


class RtserveServicer(ProviderServicer):
    @_log_errors
    def PlanResourceChange(self, request: pb.PlanResourceChange.Request, context: grpc.ServicerContext):  # noqa: N802
        type_name = request.type_name
        diags = Diagnostics()
        attrs = self._get_res_attrs(type_name)
        blocks = self._get_res_blocks(type_name)

        _, prior = _decode_state(diags, attrs, blocks, request.prior_state)
        proposed_enc, proposed = _decode_state(diags, attrs, blocks, request.proposed_new_state)
        _, config = _decode_state(diags, attrs, blocks, request.config)
        if diags.has_errors():
            return pb.PlanResourceChange.Response(diagnostics=diags.to_pb())

        if proposed is None:
            # Destroy: nothing to plan.
            return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(None), diagnostics=diags.to_pb())

        planned: dict[str, Any] = {}
        for key, value in proposed.items():
            if key in attrs and value is None and attrs[key].computed and prior is None:
                planned[key] = attrs[key].default  # Unknown unless the schema declares a default
            else:
                planned[key] = value

        changed = set()
        requires_replace = []
        if prior is not None:
            changed = {
                k
                for k in set(planned) & set(prior) & set(attrs)
                if not attrs[k].type.semantically_equal(prior[k], planned[k])
            }
            requires_replace = [_to_attribute_path([k]) for k in sorted(changed) if attrs[k].requires_replace]

        inst = self.app.new_resource(self._get_res_cls(type_name))
        ctx = ConfiguredPlanContext(diags, type_name, changed_fields=changed, config=config)
        result = inst.plan(ctx, deepcopy(prior), planned)
        return pb.PlanResourceChange.Response(
            planned_state=_encode_state(attrs, blocks, result, proposed_enc),
            requires_replace=requires_replace,
            diagnostics=diags.to_pb(),
        )
