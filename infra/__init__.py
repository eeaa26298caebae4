"""Fast Render infrastructure: the topology, the local cloud, the cloud deployment."""
