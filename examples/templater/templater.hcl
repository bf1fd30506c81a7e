# templater (consul-template compatible) configuration: the seed's nginx setup.
consul {
  address = "127.0.0.1:8500"
  retry {
    backoff     = "250ms"
    max_backoff = "1m"
  }
}

log_level = "info"
wait {
  min = "2s"
  max = "10s"
}

template {
  source          = "nginx.ctmpl"
  destination     = "/usr/local/nginx/conf/nginx.conf"
  command         = "/usr/local/nginx/sbin/nginx -s reload"
  command_timeout = "60s"
  perms           = 0644
  backup          = true
  # Ours: validate the staged file before it replaces the destination.
  check_command   = "/usr/local/nginx/sbin/nginx -t -q -c {{.TempPath}}"
}

template {
  source      = "upstreams.hbs"
  engine      = "handlebars"
  destination = "/usr/local/nginx/conf/upstreams.conf"
  command     = "/usr/local/nginx/sbin/nginx -s reload"
}
