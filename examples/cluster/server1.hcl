# Server 1 of a three-server datacenter (examples/cluster/): server1-3.hcl and client.hcl
# are one set. Each host gets its file in /etc/registry.d/ and runs
#   registry-node agent -config-dir=/etc/registry.d      (examples/systemd/registry-node.service)
# The three wait for each other (bootstrap_expect), then elect a leader; any one can be lost.
datacenter       = "dc1"
node_name        = "server1"
data_dir         = "/var/lib/registry"
server           = true
bootstrap_expect = 3
bind_addr        = "10.0.0.1"
client_addr      = "0.0.0.0"
retry_join       = ["10.0.0.2", "10.0.0.3"]

ui_config {
  enabled = true
}

# Servers stay in the cluster on SIGTERM (a restart is not a departure); SIGINT, which
# the systemd unit's ExecStop sends, leaves gracefully.
leave_on_terminate = false
