# Used with `registry-node agent -dev -config-file=examples/dev.hcl`:
# two services and a node check on a single in-memory dev agent.
node_name = "dev"
log_level = "DEBUG"

service {
  name = "web"
  port = 8080
  tags = ["v1", "primary"]

  check {
    http     = "http://127.0.0.1:8080/health"
    interval = "10s"
  }

  check {
    tcp      = "127.0.0.1:8080"
    interval = "5s"
  }
}

service {
  name = "api"
  id   = "api-1"
  port = 9090
  meta = {
    team = "platform"
  }
}

check {
  id   = "mem"
  name = "memory"
  ttl  = "1m"
}

watches = [
  {
    type    = "key"
    key     = "config/web"
    handler = "/usr/local/bin/reload-web"
  }
]
