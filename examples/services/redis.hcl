service {
  name = "redis"
  port = 6379
  tags = ["cache"]

  check {
    id       = "redis-tcp"
    tcp      = "127.0.0.1:6379"
    interval = "10s"
  }
}
