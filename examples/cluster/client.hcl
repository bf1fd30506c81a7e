# A client agent of the examples/cluster/ set: runs on every host with containers or a
# load balancer, next to registrator and templater, which talk to it on 127.0.0.1:8500.
# It keeps no Raft state and forwards every request to a live server, so no single server
# is a dependency of the services on this host.
datacenter  = "dc1"
node_name   = "client1"
data_dir    = "/var/lib/registry"
bind_addr   = "10.0.0.10"
client_addr = "127.0.0.1"
retry_join  = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]

# Clients leave gracefully on SIGTERM too (Consul's default for clients).
leave_on_terminate = true
