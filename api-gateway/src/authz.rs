//! Authorization: whether an authenticated caller may make a request. Every call of every
//! API passes one [`Authorizer`] with the request's [`Attributes`] (Kubernetes'
//! `authorizer.Attributes`: user, verb, API group, resource, subresource, namespace, name,
//! or a non-resource path) before anything is read or written.
//!
//! ```text
//!   request ─► authenticate (auth) ─► Attributes ─► Authorizer::authorize ─► Allow ─► registry
//!                                                                      └─► Deny(reason) ─► PermissionDenied
//! ```
//!
//! Owns the seam and the rules behind it. [`Chain`] asks authorizers in order and the first
//! with an opinion decides (as kube-apiserver's `--authorization-mode=Node,RBAC`);
//! [`DefaultRules`] is today's rule set. It must not authenticate, read the store per
//! request, or filter what a caller sees inside an allowed answer (that is the service's).

use rafter_proto::well_known::{BOOTSTRAPPERS_GROUP, MASTERS_GROUP};
use rafter_proto::Kind;

use crate::auth::UserInfo;

/// What is asked of the API in one request, as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` ...
    pub verb: &'a str,
    /// A resource, or a non-resource path.
    pub target: Target<'a>,
}

/// What a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// An API resource.
    Resource {
        /// The kind, which gives its API group and plural resource name.
        kind: Kind,
        /// `status`, `scale`, `log`, `binding`, `eviction`, `approval`, or "" for the object.
        subresource: &'a str,
        /// The namespace ("" for cluster-scoped kinds and for lists across namespaces).
        namespace: &'a str,
        /// The object's name ("" for lists, watches and creates with `generateName`).
        name: &'a str,
    },
    /// Something that is not a resource: a path such as `/cluster/members`.
    NonResource {
        /// The path.
        path: &'a str,
    },
}

impl<'a> Target<'a> {
    /// Objects of `kind` (add namespace, name, subresource after).
    pub fn resource(kind: Kind) -> Target<'a> {
        Target::Resource {
            kind,
            subresource: "",
            namespace: "",
            name: "",
        }
    }

    /// The same target's `subresource`.
    pub fn subresource(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { subresource, .. } = &mut self {
            *subresource = value;
        }
        self
    }

    /// The same target in namespace `value` ("" for all namespaces).
    pub fn namespace(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { namespace, .. } = &mut self {
            *namespace = value;
        }
        self
    }

    /// The same target's object named `value`.
    pub fn name(mut self, value: &'a str) -> Target<'a> {
        if let Target::Resource { name, .. } = &mut self {
            *name = value;
        }
        self
    }
}

impl<'a> Attributes<'a> {
    /// `user` asks to `verb` objects of `kind` (add namespace, name, subresource after).
    pub fn resource(user: &'a UserInfo, verb: &'a str, kind: Kind) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            target: Target::resource(kind),
        }
    }

    /// `user` asks to `verb` the non-resource `path`.
    pub fn non_resource(user: &'a UserInfo, verb: &'a str, path: &'a str) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            target: Target::NonResource { path },
        }
    }

    /// The same request on `subresource` of the object.
    pub fn subresource(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.subresource(value);
        self
    }

    /// The same request in `value` ("" for all namespaces).
    pub fn namespace(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.namespace(value);
        self
    }

    /// The same request on the object named `value`.
    pub fn name(mut self, value: &'a str) -> Attributes<'a> {
        self.target = self.target.name(value);
        self
    }

    /// `verb resource[/subresource]` or `verb path`, as messages name a request.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Resource {
                kind,
                subresource,
                namespace,
                ..
            } => {
                let info = kind.info();
                let mut resource = info.plural.to_owned();
                if !info.group.is_empty() {
                    resource = format!("{resource}.{}", info.group);
                }
                if !subresource.is_empty() {
                    resource = format!("{resource}/{subresource}");
                }
                if namespace.is_empty() {
                    format!("{} {resource}", self.verb)
                } else {
                    format!("{} {resource} in namespace {namespace:?}", self.verb)
                }
            }
            Target::NonResource { path } => format!("{} {path}", self.verb),
        }
    }
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request may go on.
    Allow,
    /// The request is refused, for this reason.
    Deny(String),
    /// This authorizer has no rule for the request; the next one decides.
    NoOpinion,
}

/// Decides whether a request may go on. Called on every request: it must answer from
/// memory, without I/O.
pub trait Authorizer: Send + Sync + 'static {
    /// The decision for `attributes`.
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision;
}

/// Authorizers asked in order; the first that allows or denies decides, and a request none
/// has an opinion on is denied.
pub struct Chain {
    authorizers: Vec<Box<dyn Authorizer>>,
}

impl Chain {
    /// The chain of `authorizers`, asked in this order.
    pub fn new(authorizers: Vec<Box<dyn Authorizer>>) -> Chain {
        Chain { authorizers }
    }
}

impl Authorizer for Chain {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        for authorizer in &self.authorizers {
            match authorizer.authorize(attributes) {
                Decision::NoOpinion => continue,
                decided => return decided,
            }
        }
        Decision::Deny(format!(
            "user {:?} cannot {}: no rule allows it",
            attributes.user.name,
            attributes.describe()
        ))
    }
}

/// The rules the gateway has always applied, until RBAC replaces them:
/// - cluster administrators (`system:masters`) may do anything;
/// - bootstrap-token holders may only create and read CertificateSigningRequests;
/// - only cluster administrators may use non-resource paths (cluster membership) and
///   approve or deny CertificateSigningRequests;
/// - any other authenticated user may do anything else with resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRules;

/// The verbs a bootstrap-token holder may use on CertificateSigningRequests.
const BOOTSTRAP_CSR_VERBS: &[&str] = &["create", "get", "list", "watch"];

impl Authorizer for DefaultRules {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        let user = attributes.user;
        if user.in_group(MASTERS_GROUP) {
            return Decision::Allow;
        }
        match &attributes.target {
            Target::NonResource { .. } => Decision::Deny(format!(
                "user {:?} cannot {}: it takes a member of {MASTERS_GROUP}",
                user.name,
                attributes.describe()
            )),
            Target::Resource {
                kind, subresource, ..
            } if user.in_group(BOOTSTRAPPERS_GROUP) => {
                if *kind == Kind::CertificateSigningRequest
                    && subresource.is_empty()
                    && BOOTSTRAP_CSR_VERBS.contains(&attributes.verb)
                {
                    Decision::Allow
                } else {
                    Decision::Deny(format!(
                        "user {:?} may only create and read certificatesigningrequests, not {}",
                        user.name,
                        attributes.describe()
                    ))
                }
            }
            Target::Resource {
                kind: Kind::CertificateSigningRequest,
                subresource: "approval",
                ..
            } => Decision::Deny(format!(
                "user {:?} cannot {}: approving certificates takes a member of {MASTERS_GROUP}",
                user.name,
                attributes.describe()
            )),
            Target::Resource { .. } => Decision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, groups.iter().map(|g| (*g).to_owned()))
    }

    #[test]
    fn default_rules_keep_bootstrappers_to_their_requests() {
        let token = user("system:bootstrap:abcdef", &[BOOTSTRAPPERS_GROUP]);
        let rules = DefaultRules;
        let csr = Attributes::resource(&token, "create", Kind::CertificateSigningRequest);
        assert_eq!(rules.authorize(&csr), Decision::Allow);
        let approve = Attributes::resource(&token, "update", Kind::CertificateSigningRequest)
            .subresource("approval");
        let Decision::Deny(why) = rules.authorize(&approve) else {
            panic!("a bootstrapper approved a request");
        };
        assert!(
            why.contains("certificatesigningrequests.certificates.k8s.io/approval"),
            "{why}"
        );
        let secrets = Attributes::resource(&token, "list", Kind::Secret).namespace("kube-system");
        let Decision::Deny(why) = rules.authorize(&secrets) else {
            panic!("a bootstrapper listed secrets");
        };
        assert!(
            why.contains("system:bootstrap:abcdef") && why.contains("in namespace \"kube-system\""),
            "{why}"
        );
    }

    #[test]
    fn only_administrators_change_membership() {
        let admin = user("admin", &[MASTERS_GROUP]);
        let jane = user("jane", &[]);
        let members = |u| Attributes::non_resource(u, "update", "/cluster/members");
        assert_eq!(DefaultRules.authorize(&members(&admin)), Decision::Allow);
        assert!(matches!(
            DefaultRules.authorize(&members(&jane)),
            Decision::Deny(why) if why.contains("system:masters")
        ));
        let approve = Attributes::resource(&jane, "update", Kind::CertificateSigningRequest)
            .subresource("approval")
            .name("node-csr-1");
        assert!(matches!(
            DefaultRules.authorize(&approve),
            Decision::Deny(why) if why.contains("\"jane\"") && why.contains("/approval")
        ));
        assert_eq!(
            DefaultRules.authorize(&Attributes {
                user: &admin,
                ..approve
            }),
            Decision::Allow
        );
        let deploy = Attributes::resource(&jane, "delete", Kind::Deployment)
            .namespace("default")
            .name("web");
        assert_eq!(DefaultRules.authorize(&deploy), Decision::Allow);
    }

    struct Fixed(Decision);

    impl Authorizer for Fixed {
        fn authorize(&self, _: &Attributes<'_>) -> Decision {
            self.0.clone()
        }
    }

    #[test]
    fn a_chain_takes_the_first_opinion_and_denies_when_none_has_one() {
        let jane = user("jane", &[]);
        let request = Attributes::resource(&jane, "get", Kind::Pod).namespace("default");
        let chain = Chain::new(vec![
            Box::new(Fixed(Decision::NoOpinion)),
            Box::new(Fixed(Decision::Deny("no".into()))),
            Box::new(Fixed(Decision::Allow)),
        ]);
        assert_eq!(chain.authorize(&request), Decision::Deny("no".into()));
        let silent = Chain::new(vec![Box::new(Fixed(Decision::NoOpinion))]);
        assert!(matches!(
            silent.authorize(&request),
            Decision::Deny(why) if why.contains("\"jane\" cannot get pods in namespace \"default\"")
        ));
    }
}
