terraform {
  required_version = ">= 1.5"

  required_providers {
    rtserve = {
      source  = "rtserve/rtserve"
      version = ">= 0.1.0"
    }
  }
}
