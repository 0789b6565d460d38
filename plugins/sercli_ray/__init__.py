"""Built-in cluster engine: `ray` (`--cluster ray` starts a local Ray cluster, `--cluster
ray://HEAD:10001` joins one). Ray is an optional extra: `pip install 'sercli[ray]'`."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_clusters(register):
    from sercli_ray.cluster import RayCluster  # Ray itself is imported only on connect

    register(RayCluster)
