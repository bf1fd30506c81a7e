# A server of a three-server datacenter (same settings as server.json, in HCL).
datacenter       = "dc1"
data_dir         = "/var/lib/registry"
node_name        = "n2"
server           = true
bootstrap_expect = 3
bind_addr        = "10.10.126.101"
client_addr      = "127.0.0.1 10.10.126.101"

retry_join     = ["10.10.105.71", "10.10.126.187"]
retry_interval = "15s"

ui_config {
  enabled = true
}

ports {
  http     = 8500
  dns      = 8600
  serf_lan = 8301
  serf_wan = 8302
  server   = 8300
}

addresses {
  http = "0.0.0.0"
}

dns_config {
  only_passing = true
  service_ttl = {
    "*" = "5s"
  }
}

performance {
  raft_multiplier = 1
}

acl {
  enabled        = false
  default_policy = "allow"
  down_policy    = "extend-cache"
  tokens {
    agent = ""
  }
}

connect {
  enabled = false
}
