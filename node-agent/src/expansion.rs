//! `$(VAR)` references in a container's `command`, `args` and `env[].value`, expanded
//! with Kubernetes' rules:
//!
//! ```text
//!   "$(NAME)"   ─► the value of NAME when it is defined, else "$(NAME)" as written
//!   "$$(NAME)"  ─► "$(NAME)"   ($$ is an escaped $)
//!   "$(NAME"    ─► "$(NAME"    (no closing parenthesis: left as written)
//!   "$x", "$"   ─► as written  (a $ that starts no reference)
//! ```
//!
//! Env values see only the variables defined before them (envFrom, then earlier env
//! entries); command and args see the whole resolved environment. Values coming from
//! `valueFrom` or `envFrom` are not expanded themselves. The caller
//! ([`crate::env::resolve_env`], [`crate::pod_worker`]) decides what is defined; this
//! module is the pure string rule only: no I/O, no API.

/// Expands `$(NAME)` references in `input`; `lookup` answers the value of a defined
/// variable. Undefined references stay as written.
pub(crate) fn expand<'a, F>(input: &str, lookup: F) -> String
where
    F: Fn(&str) -> Option<&'a str>,
{
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$` is one literal `$`; whatever follows is plain text.
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let name = &body[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[close + 1..];
                }
                None => {
                    // An unterminated reference is plain text.
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// [`expand`] against an ordered environment (the last definition of a name wins).
pub(crate) fn expand_with_env(input: &str, env: &[(String, String)]) -> String {
    expand(input, |name| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("NAME".to_owned(), "web".to_owned()),
            ("PORT".to_owned(), "8080".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]
    }

    #[test]
    fn references_expand_by_kubernetes_rules() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("$(NAME)", "web"),
            ("http://$(NAME):$(PORT)/", "http://web:8080/"),
            ("$(NAME)$(PORT)", "web8080"),
            ("[$(EMPTY)]", "[]"),
            ("$(MISSING)", "$(MISSING)"),
            ("a $(MISSING) b $(NAME)", "a $(MISSING) b web"),
            ("$$(NAME)", "$(NAME)"),
            ("$$$(NAME)", "$web"),
            ("$$$$(NAME)", "$$(NAME)"),
            ("$$", "$"),
            ("cost: $5", "cost: $5"),
            ("$", "$"),
            ("end$", "end$"),
            ("$(NAME", "$(NAME"),
            ("$(NAME $(PORT)", "$(NAME $(PORT)"),
            ("$()", "$()"),
            ("$(PORT))", "8080)"),
            ("$HOME and ${NAME}", "$HOME and ${NAME}"),
            ("ünïcödé $(NAME) ✓", "ünïcödé web ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(&expand_with_env(input, &env()), want, "input {input:?}");
        }
    }

    #[test]
    fn a_later_definition_of_a_name_wins() {
        let mut env = env();
        env.push(("NAME".to_owned(), "api".to_owned()));
        assert_eq!(expand_with_env("$(NAME)", &env), "api");
    }

    #[test]
    fn an_expanded_value_is_not_expanded_again() {
        let env = vec![
            ("A".to_owned(), "$(B)".to_owned()),
            ("B".to_owned(), "b".to_owned()),
        ];
        assert_eq!(expand_with_env("$(A)", &env), "$(B)");
    }
}
