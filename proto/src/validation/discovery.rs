//! The `discovery.k8s.io/v1` kind: EndpointSlice.
//!
//! Owns the rules of a slice's own fields: the address type, each endpoint's addresses
//! (parsed as the type says), its node and hostname names, and the ports (names unique,
//! numbers in range, known protocols), with Kubernetes' limits of 1,000 endpoints, 100
//! addresses per endpoint and 100 ports. It must not look up the Service or pods a slice
//! names.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::pod::PROTOCOLS;
use super::{names, Errors, Path};
use crate::v1;

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;

pub(super) fn endpoint_slice(slice: &v1::EndpointSlice, errs: &mut Errors) {
    let type_path = Path::root("addressType");
    errs.enum_value(&type_path, &slice.address_type, ADDRESS_TYPES);
    let endpoints_path = Path::root("endpoints");
    if slice.endpoints.len() > MAX_ENDPOINTS {
        errs.invalid(
            &endpoints_path,
            slice.endpoints.len(),
            format!("must have at most {MAX_ENDPOINTS} items"),
        );
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let e_path = endpoints_path.index(i);
        let a_path = e_path.child("addresses");
        if endpoint.addresses.is_empty() {
            errs.required(&a_path, "must contain at least 1 address");
        } else if endpoint.addresses.len() > MAX_ADDRESSES {
            errs.invalid(
                &a_path,
                endpoint.addresses.len(),
                format!("must have at most {MAX_ADDRESSES} items"),
            );
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            address_of_type(&a_path.index(j), &slice.address_type, address, errs);
        }
        if !endpoint.hostname.is_empty() {
            errs.format(
                &e_path.child("hostname"),
                &endpoint.hostname,
                names::dns1123_label,
            );
        }
        if !endpoint.node_name.is_empty() {
            errs.format(
                &e_path.child("nodeName"),
                &endpoint.node_name,
                names::dns1123_subdomain,
            );
        }
    }
    let ports_path = Path::root("ports");
    if slice.ports.len() > MAX_PORTS {
        errs.invalid(
            &ports_path,
            slice.ports.len(),
            format!("must have at most {MAX_PORTS} items"),
        );
    }
    let mut names_seen = BTreeSet::new();
    for (i, port) in slice.ports.iter().enumerate() {
        let p_path = ports_path.index(i);
        if !port.name.is_empty() {
            errs.format(&p_path.child("name"), &port.name, names::dns1123_label);
        }
        if !names_seen.insert(port.name.as_str()) {
            errs.duplicate(&p_path.child("name"), &port.name);
        }
        errs.port_number(&p_path.child("port"), port.port);
        errs.optional_enum_value(&p_path.child("protocol"), &port.protocol, PROTOCOLS);
    }
}

/// An address written as the slice's `addressType` says (nothing is checked against an
/// unknown type: that field carries the error).
fn address_of_type(path: &Path, address_type: &str, address: &str, errs: &mut Errors) {
    match address_type {
        "IPv4" if address.parse::<Ipv4Addr>().is_err() => {
            errs.invalid(path, address, "must be a valid IPv4 address")
        }
        "IPv6" if address.parse::<Ipv6Addr>().is_err() => {
            errs.invalid(path, address, "must be a valid IPv6 address")
        }
        "FQDN" => errs.format(path, address, names::dns1123_subdomain),
        _ => {}
    }
}
