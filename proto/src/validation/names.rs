//! The string formats names and keys must have, with Kubernetes' messages.
//!
//! Each check takes the string and returns the reasons it is not valid (empty when it is),
//! so callers report one error per reason, as Kubernetes does. Owns only the formats; it
//! does not know which field a string came from and never builds a [`super::FieldError`].

pub(crate) const NON_NEGATIVE: &str = "must be greater than or equal to 0";
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const CONFIG_KEY_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_SLASHES_MSG: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn max_len(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns_label(s: &str) -> bool {
    let starts_ends = s.chars().next().is_some_and(is_lower_alnum)
        && s.chars().last().is_some_and(is_lower_alnum);
    starts_ends && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.chars().next().is_some_and(alnum)
        && s.chars().last().is_some_and(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// A DNS label (RFC 1123): namespace names, container and volume names.
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        msgs.push(max_len(DNS1123_LABEL_MAX));
    }
    if !matches_dns_label(s) {
        msgs.push(DNS1123_LABEL_MSG.to_owned());
    }
    msgs
}

/// A DNS subdomain (RFC 1123): most object names.
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        msgs.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(matches_dns_label) {
        msgs.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    msgs
}

/// A DNS label (RFC 1035), which starts with a letter: Service names.
pub(crate) fn dns1035_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        msgs.push(max_len(DNS1123_LABEL_MAX));
    }
    if !(matches_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())) {
        msgs.push(DNS1035_LABEL_MSG.to_owned());
    }
    msgs
}

/// A name that is used as one segment of a URL path (RBAC names such as `system:node`).
pub(crate) fn path_segment_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s == "." || s == ".." {
        msgs.push(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            msgs.push(format!("may not contain '{bad}'"));
        }
    }
    msgs
}

/// A qualified name with an optional DNS subdomain prefix: label and annotation keys,
/// taint and toleration keys (`app`, `kubernetes.io/hostname`).
pub(crate) fn qualified_name(s: &str) -> Vec<String> {
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return vec![format!("prefix part {}", "must be non-empty")];
            }
            let mut msgs: Vec<String> = dns1123_subdomain(prefix)
                .into_iter()
                .map(|m| format!("prefix part {m}"))
                .collect();
            msgs.extend(qualified_name_part(name));
            return msgs;
        }
        _ => return vec![QUALIFIED_NAME_SLASHES_MSG.to_owned()],
    };
    qualified_name_part(name)
}

fn qualified_name_part(name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec!["name part must be non-empty".to_owned()];
    }
    let mut msgs = Vec::new();
    if name.len() > QUALIFIED_NAME_MAX {
        msgs.push(format!("name part {}", max_len(QUALIFIED_NAME_MAX)));
    }
    if !matches_qualified_part(name) {
        msgs.push(QUALIFIED_NAME_MSG.to_owned());
    }
    msgs
}

/// A label value: empty, or up to 63 alphanumerics, '-', '_' and '.'.
pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        msgs.push(max_len(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !matches_qualified_part(s) {
        msgs.push(LABEL_VALUE_MSG.to_owned());
    }
    msgs
}

/// An environment variable name: Kubernetes accepts any printable ASCII but '='.
pub(crate) fn env_var_name(s: &str) -> Vec<String> {
    if s.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !s.contains('=') {
        Vec::new()
    } else {
        vec![ENV_VAR_NAME_MSG.to_owned()]
    }
}

/// A key of a ConfigMap or Secret: a file name of alphanumerics, '-', '_' and '.'.
pub(crate) fn config_key(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > CONFIG_KEY_MAX {
        msgs.push(max_len(CONFIG_KEY_MAX));
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        msgs.push(CONFIG_KEY_MSG.to_owned());
    }
    if s == "." || s == ".." {
        msgs.push(format!("must not be '{s}'"));
    } else if s.starts_with("..") {
        msgs.push("must not start with '..'".to_owned());
    }
    msgs
}

/// An IANA service name (a named port such as `http`): at most 15 lowercase letters,
/// digits and single inner hyphens, with at least one letter.
pub(crate) fn iana_svc_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > IANA_SVC_NAME_MAX {
        msgs.push(max_len(IANA_SVC_NAME_MAX));
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        msgs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if s.contains("--") {
        msgs.push("must not contain consecutive hyphens".to_owned());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)".to_owned());
    }
    if s.starts_with('-') || s.ends_with('-') {
        msgs.push("must not begin or end with a hyphen".to_owned());
    }
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> Vec<String>;

    #[test]
    fn each_format_accepts_its_examples_and_refuses_the_rest() {
        let cases: &[(&str, Check, &str, bool)] = &[
            ("label", dns1123_label, "my-name", true),
            ("label", dns1123_label, "123-abc", true),
            ("label", dns1123_label, "My-Name", false),
            ("label", dns1123_label, "-a", false),
            ("label", dns1123_label, "a.b", false),
            ("label", dns1123_label, "", false),
            ("label", dns1123_label, &"a".repeat(64), false),
            ("subdomain", dns1123_subdomain, "example.com", true),
            ("subdomain", dns1123_subdomain, "node01", true),
            ("subdomain", dns1123_subdomain, "My_Pod", false),
            ("subdomain", dns1123_subdomain, "a..b", false),
            ("subdomain", dns1123_subdomain, "a.", false),
            ("dns1035", dns1035_label, "web", true),
            ("dns1035", dns1035_label, "1web", false),
            ("path segment", path_segment_name, "system:node", true),
            ("path segment", path_segment_name, "a/b", false),
            ("qualified", qualified_name, "app", true),
            ("qualified", qualified_name, "kubernetes.io/hostname", true),
            ("qualified", qualified_name, "app.kubernetes.io/name", true),
            ("qualified", qualified_name, "a/b/c", false),
            ("qualified", qualified_name, "/a", false),
            ("qualified", qualified_name, "Example.com/a", false),
            ("qualified", qualified_name, "a-", false),
            ("label value", label_value, "", true),
            ("label value", label_value, "v1.2_3-x", true),
            ("label value", label_value, "a b", false),
            ("label value", label_value, &"a".repeat(64), false),
            ("env var", env_var_name, "my.var-1", true),
            ("env var", env_var_name, "A=B", false),
            ("env var", env_var_name, "tab\t", false),
            ("config key", config_key, "game.properties", true),
            ("config key", config_key, "..data", false),
            ("config key", config_key, "a/b", false),
            ("iana", iana_svc_name, "http", true),
            ("iana", iana_svc_name, "http-alt", true),
            ("iana", iana_svc_name, "8080", false),
            ("iana", iana_svc_name, "http--x", false),
            ("iana", iana_svc_name, "a-very-long-port-name", false),
        ];
        for (format, check, input, valid) in cases {
            let msgs = check(input);
            assert_eq!(msgs.is_empty(), *valid, "{format} {input:?}: {msgs:?}");
        }
    }
}
