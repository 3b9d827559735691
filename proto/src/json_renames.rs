// Shared by `build.rs` (serde renames) and the crate (the OpenAPI schema), so both name
// the fields the same.

/// Fields whose Kubernetes JSON name is not the plain camelCase of the proto name.
pub const JSON_RENAMES: &[(&str, &str)] = &[
    ("NodeSpec.pod_cidr", "podCIDR"),
    ("NodeSpec.pod_cidrs", "podCIDRs"),
    ("NodeSpec.provider_id", "providerID"),
    ("NodeSystemInfo.machine_id", "machineID"),
    ("NodeSystemInfo.system_uuid", "systemUUID"),
    ("NodeSystemInfo.boot_id", "bootID"),
    ("ContainerPort.host_ip", "hostIP"),
    ("PodStatus.host_ip", "hostIP"),
    ("PodStatus.pod_ip", "podIP"),
    ("PodStatus.pod_ips", "podIPs"),
    ("ContainerStatus.image_id", "imageID"),
    ("ContainerStatus.container_id", "containerID"),
    ("ContainerStateTerminated.container_id", "containerID"),
    ("ServiceSpec.cluster_ip", "clusterIP"),
    ("ServiceSpec.cluster_ips", "clusterIPs"),
    ("ServiceSpec.external_ips", "externalIPs"),
    ("ServiceSpec.load_balancer_ip", "loadBalancerIP"),
    ("SessionAffinityConfig.client_ip", "clientIP"),
    ("PolicyRule.non_resource_urls", "nonResourceURLs"),
];
