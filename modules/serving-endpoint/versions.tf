terraform {
  # 1.9: validation blocks that refer to other variables (traffic is checked against served_entities).
  required_version = ">= 1.9"

  required_providers {
    rtserve = {
      source  = "rtserve/rtserve"
      version = ">= 0.1.0"
    }
  }
}
