//! LimitRange admission, as Kubernetes' LimitRanger: a namespace's LimitRanges give a
//! new pod's containers their default limits and requests, and refuse a pod or a
//! PersistentVolumeClaim outside their bounds.
//!
//! ```text
//!  Container: limits[r] unset ─► default[r];  requests[r] unset ─► defaultRequest[r]
//!             then min ≤ request, min ≤ limit ≤ max, limit / request ≤ maxLimitRequestRatio
//!  Pod:       the same bounds over the sums of its containers' requests and limits
//!  PersistentVolumeClaim: min ≤ spec.resources.requests.storage ≤ max
//! ```
//!
//! Owns the arithmetic only: pure functions over the object and the ranges, no reads (the
//! admission module reads the ranges) and no other policy. Errors name the field, the
//! bound and the LimitRange.

use std::collections::BTreeMap;

use rafter_proto::v1::{self, LimitRangeItem};
use rafter_proto::Quantity;

/// Gives `pod`'s containers the defaults of every `Container` item of `ranges`.
pub(crate) fn default_pod(pod: &mut v1::Pod, ranges: &[v1::LimitRange]) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    for item in items(ranges, "Container").map(|(_, item)| item) {
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut())
        {
            let resources = container.resources.get_or_insert_with(Default::default);
            for (resource, value) in &item.default {
                resources
                    .limits
                    .entry(resource.clone())
                    .or_insert_with(|| value.clone());
            }
            for (resource, value) in &item.default_request {
                resources
                    .requests
                    .entry(resource.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
}

fn items<'a>(
    ranges: &'a [v1::LimitRange],
    kind: &'a str,
) -> impl Iterator<Item = (&'a str, &'a LimitRangeItem)> + 'a {
    ranges.iter().flat_map(move |lr| {
        let name = lr.metadata.as_ref().map_or("", |m| m.name.as_str());
        lr.spec
            .iter()
            .flat_map(|s| s.limits.iter())
            .filter(move |i| i.r#type == kind)
            .map(move |i| (name, i))
    })
}

fn parse(map: &rafter_proto::StringMap) -> BTreeMap<String, Quantity> {
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.parse::<Quantity>().ok()?)))
        .collect()
}

/// Checks requests and limits against one item's bounds; `what` is "Container" or "Pod",
/// `path` the field holding them (`spec.containers[0].resources`).
fn check_bounds(
    range: &str,
    item: &LimitRangeItem,
    what: &str,
    path: &str,
    requests: &BTreeMap<String, Quantity>,
    limits: &BTreeMap<String, Quantity>,
) -> Result<(), String> {
    let at =
        |field: &str, resource: &str| format!("{path}.{field}.{resource}, LimitRange {range:?}");
    for (resource, min) in parse(&item.min) {
        match requests.get(&resource) {
            None => {
                return Err(format!(
                    "minimum {resource} usage per {what} is {min}. No request is specified ({})",
                    at("requests", &resource)
                ))
            }
            Some(r) if *r < min => {
                return Err(format!(
                    "minimum {resource} usage per {what} is {min}, but request is {r} ({})",
                    at("requests", &resource)
                ))
            }
            _ => {}
        }
        if let Some(l) = limits.get(&resource).filter(|l| **l < min) {
            return Err(format!(
                "minimum {resource} usage per {what} is {min}, but limit is {l} ({})",
                at("limits", &resource)
            ));
        }
    }
    for (resource, max) in parse(&item.max) {
        match limits.get(&resource) {
            None => {
                return Err(format!(
                    "maximum {resource} usage per {what} is {max}. No limit is specified ({})",
                    at("limits", &resource)
                ))
            }
            Some(l) if *l > max => {
                return Err(format!(
                    "maximum {resource} usage per {what} is {max}, but limit is {l} ({})",
                    at("limits", &resource)
                ))
            }
            _ => {}
        }
        if let Some(r) = requests.get(&resource).filter(|r| **r > max) {
            return Err(format!(
                "maximum {resource} usage per {what} is {max}, but request is {r} ({})",
                at("requests", &resource)
            ));
        }
    }
    for (resource, ratio) in parse(&item.max_limit_request_ratio) {
        let (Some(l), Some(r)) = (limits.get(&resource), requests.get(&resource)) else {
            continue;
        };
        if r.nanos() == 0 {
            return Err(format!("{resource} max limit to request ratio per {what} is {ratio}, but no request is specified or request is 0 ({})", at("requests", &resource)));
        }
        // limit / request > ratio  ⇔  limit > ratio · request (in nano units).
        let over =
            l.nanos().saturating_mul(1_000_000_000) > ratio.nanos().saturating_mul(r.nanos());
        if over {
            return Err(format!("{resource} max limit to request ratio per {what} is {ratio}, but provided ratio is {}/{} ({})", l, r, at("limits", &resource)));
        }
    }
    Ok(())
}

fn add_into(sum: &mut BTreeMap<String, Quantity>, part: &BTreeMap<String, Quantity>) {
    for (k, v) in part {
        let total = match sum.get(k) {
            Some(s) => s.checked_add(v).unwrap_or(*v),
            None => *v,
        };
        sum.insert(k.clone(), total);
    }
}

/// Whether `pod` (defaults already given) keeps within every `Container` and `Pod` item.
pub(crate) fn check_pod(pod: &v1::Pod, ranges: &[v1::LimitRange]) -> Result<(), String> {
    let Some(spec) = &pod.spec else { return Ok(()) };
    let mut pod_requests = BTreeMap::new();
    let mut pod_limits = BTreeMap::new();
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}].resources"), c, false))
        .chain(
            spec.init_containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.initContainers[{i}].resources"), c, true)),
        );
    for (path, container, init) in containers {
        let resources = container.resources.clone().unwrap_or_default();
        let requests = parse(&resources.requests);
        let limits = parse(&resources.limits);
        for (range, item) in items(ranges, "Container") {
            check_bounds(range, item, "Container", &path, &requests, &limits)?;
        }
        if !init {
            add_into(&mut pod_requests, &requests);
            add_into(&mut pod_limits, &limits);
        }
    }
    for (range, item) in items(ranges, "Pod") {
        check_bounds(
            range,
            item,
            "Pod",
            "spec.containers[*].resources",
            &pod_requests,
            &pod_limits,
        )?;
    }
    Ok(())
}

/// Whether a claim's storage request keeps within every `PersistentVolumeClaim` item.
pub(crate) fn check_claim(
    claim: &v1::PersistentVolumeClaim,
    ranges: &[v1::LimitRange],
) -> Result<(), String> {
    let requests = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .map(|r| parse(&r.requests))
        .unwrap_or_default();
    let limits = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .map(|r| parse(&r.limits))
        .unwrap_or_default();
    for (range, item) in items(ranges, "PersistentVolumeClaim") {
        for (resource, min) in parse(&item.min) {
            if let Some(r) = requests.get(&resource).filter(|r| **r < min) {
                return Err(format!("minimum {resource} usage per PersistentVolumeClaim is {min}, but request is {r} (spec.resources.requests.{resource}, LimitRange {range:?})"));
            }
        }
        for (resource, max) in parse(&item.max) {
            if let Some(r) = requests.get(&resource).filter(|r| **r > max) {
                return Err(format!("maximum {resource} usage per PersistentVolumeClaim is {max}, but request is {r} (spec.resources.requests.{resource}, LimitRange {range:?})"));
            }
            if let Some(l) = limits.get(&resource).filter(|l| **l > max) {
                return Err(format!("maximum {resource} usage per PersistentVolumeClaim is {max}, but limit is {l} (spec.resources.limits.{resource}, LimitRange {range:?})"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::{parse_object, Object};

    fn ranges(yaml: &str) -> Vec<v1::LimitRange> {
        let mut o = parse_object(yaml, "test").unwrap();
        rafter_proto::apply_defaults(&mut o);
        let Object::LimitRange(lr) = o else { panic!() };
        vec![lr]
    }

    fn pod(yaml_resources: &str) -> v1::Pod {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {yaml_resources}\n");
        let Object::Pod(p) = parse_object(&text, "test").unwrap() else {
            panic!()
        };
        p
    }

    const LIMITS: &str = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 250m}\n    max: {cpu: '1', memory: 1Gi}\n    min: {cpu: 50m}\n    maxLimitRequestRatio: {cpu: '4'}\n  - type: PersistentVolumeClaim\n    max: {storage: 2Gi}\n";

    #[test]
    fn a_container_without_resources_gets_the_defaults() {
        let r = ranges(LIMITS);
        let mut p = pod("{}");
        default_pod(&mut p, &r);
        let res = p.spec.as_ref().unwrap().containers[0]
            .resources
            .clone()
            .unwrap();
        assert_eq!(res.limits["cpu"], "500m");
        assert_eq!(res.limits["memory"], "256Mi");
        assert_eq!(res.requests["cpu"], "250m");
        assert_eq!(
            res.requests["memory"], "256Mi",
            "defaultRequest defaults to default"
        );
        check_pod(&p, &r).unwrap();
    }

    #[test]
    fn bounds_and_ratios_refuse_with_the_field_and_the_limit() {
        let r = ranges(LIMITS);
        let mut over = pod("{limits: {cpu: '2'}}");
        default_pod(&mut over, &r);
        let err = check_pod(&over, &r).unwrap_err();
        assert!(
            err.contains("maximum cpu usage per Container is 1, but limit is 2"),
            "{err}"
        );
        assert!(
            err.contains("spec.containers[0].resources.limits.cpu"),
            "{err}"
        );
        assert!(err.contains("\"limits\""), "{err}");

        let mut under = pod("{requests: {cpu: 10m}}");
        default_pod(&mut under, &r);
        let err = check_pod(&under, &r).unwrap_err();
        assert!(
            err.contains("minimum cpu usage per Container is 50m, but request is 10m"),
            "{err}"
        );

        let mut ratio = pod("{requests: {cpu: 100m}, limits: {cpu: 800m}}");
        default_pod(&mut ratio, &r);
        let err = check_pod(&ratio, &r).unwrap_err();
        assert!(
            err.contains("max limit to request ratio per Container is 4"),
            "{err}"
        );
    }

    #[test]
    fn a_claim_over_the_storage_max_is_refused() {
        let r = ranges(LIMITS);
        let Object::PersistentVolumeClaim(claim) = parse_object(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}\n",
            "test",
        )
        .unwrap() else {
            panic!()
        };
        let err = check_claim(&claim, &r).unwrap_err();
        assert!(
            err.contains(
                "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
            ),
            "{err}"
        );
    }
}
