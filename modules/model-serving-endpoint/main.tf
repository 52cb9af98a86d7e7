locals {
  compute = { for stage, config in { Staging = var.staging, Production = var.production } : stage => config if config != null }
}

resource "rtserve_model_serving" "this" {
  registered_model_name = var.model_name
  wait_for_ready        = var.wait_for_ready
  disable_on_destroy    = var.disable_on_destroy

  dynamic "compute_config" {
    for_each = local.compute
    content {
      stage                 = compute_config.key
      workload_size         = compute_config.value.workload_size
      scale_to_zero_enabled = compute_config.value.scale_to_zero_enabled
    }
  }

  timeouts {
    create = var.timeout
    update = var.timeout
  }
}

# Promotions wait for serving, and are archived before serving is disabled on destroy.
resource "rtserve_model_version_stage" "promotion" {
  for_each = var.promotions

  name                      = rtserve_model_serving.this.registered_model_name
  version                   = each.value
  stage                     = each.key
  archive_existing_versions = var.archive_existing_versions
  comment                   = var.comment
  wait_for_ready            = var.wait_for_ready

  timeouts {
    create = var.timeout
    update = var.timeout
  }
}
