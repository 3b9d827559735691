//! Label selectors and field selectors: parsing their string form, building them from the
//! API's `LabelSelector`, matching, and printing them back in canonical form.
//!
//! Owns the selector grammar and its matching rules, shared by the gateway (List and Watch),
//! the controllers (which pods belong to a ReplicaSet) and the CLI (`-l`, `--field-selector`).
//! It must not do I/O or know about storage: it answers "does this object match", never
//! "which objects match".
//!
//! ```text
//!   "app=web,env in (prod)" --parse--> Selector --matches(&labels)--> bool
//!   v1::LabelSelector ---from_label_selector--^  \--Display--> "app=web,env in (prod)"
//!
//!   "spec.nodeName=n1" --parse--> FieldSelector --check(Kind)--> Ok / UnsupportedField
//!                                              \--matches(&Object)--> bool
//! ```
//!
//! Label selector grammar (as in Kubernetes, whitespace anywhere between tokens):
//!
//! ```text
//! selector    := "" | requirement ("," requirement)*
//! requirement := "!" key | key | key ("=" | "==" | "!=") value?
//!              | key ("in" | "notin") "(" value? ("," value?)* ")"
//! ```
//!
//! `key in ()` is the set holding only the empty value, as in Kubernetes. The `Gt`/`Lt`
//! operators Kubernetes accepts for node affinity are not part of label selectors here.
//!
//! An empty selector matches everything; [`Selector::nothing`] matches nothing. Workload
//! controllers treat a missing `spec.selector` as "nothing" (see
//! [`Selector::from_optional_label_selector`]), while an empty one means "everything".

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::kind::{Kind, Object};
use crate::v1;

/// Why a label or field selector was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector text does not follow the grammar; `column` (1-based, in characters)
    /// points at the offending token.
    #[error("invalid selector {selector:?} at character {column}: {message}")]
    Syntax {
        /// The whole selector as written.
        selector: String,
        /// Where the problem starts, counted in characters from 1.
        column: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A label key is not a valid qualified name (`[prefix/]name`).
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key as written.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A label value is too long or has characters labels cannot hold.
    #[error("invalid value {value:?} for label {key:?}: {reason}")]
    InvalidValue {
        /// The label key the value belongs to.
        key: String,
        /// The value as written.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A `matchExpressions` operator is not one of In, NotIn, Exists, DoesNotExist.
    #[error(
        "invalid operator {operator:?} for label {key:?}: use In, NotIn, Exists or DoesNotExist"
    )]
    InvalidOperator {
        /// The key of the expression.
        key: String,
        /// The operator as written.
        operator: String,
    },
    /// An `In`/`NotIn` expression has no values.
    #[error("operator {operator} for label {key:?} needs at least one value")]
    MissingValues {
        /// The key of the expression.
        key: String,
        /// `In` or `NotIn`.
        operator: String,
    },
    /// An `Exists`/`DoesNotExist` expression lists values.
    #[error("operator {operator} for label {key:?} takes no values")]
    UnexpectedValues {
        /// The key of the expression.
        key: String,
        /// `Exists` or `DoesNotExist`.
        operator: String,
    },
    /// A field selector names a field that cannot be selected on for this kind.
    #[error("field selector {field:?} is not supported for {kind}; supported fields: {supported}")]
    UnsupportedField {
        /// The field as written.
        field: String,
        /// The kind the selector was checked against.
        kind: Kind,
        /// The supported fields, comma separated.
        supported: String,
    },
}

// ---------------------------------------------------------------------------- labels

/// The test a [`Requirement`] applies to one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    /// The label is present with this value (`key=value`, `key==value`).
    Equals(String),
    /// The label is absent or has another value (`key!=value`).
    NotEquals(String),
    /// The label is present with one of these values (`key in (a,b)`).
    In(BTreeSet<String>),
    /// The label is absent or has none of these values (`key notin (a,b)`).
    NotIn(BTreeSet<String>),
    /// The label is present, with any value (`key`).
    Exists,
    /// The label is absent (`!key`).
    DoesNotExist,
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
}

impl Requirement {
    /// A requirement with a validated key and values. `In`/`NotIn` need at least one value.
    pub fn new(key: impl Into<String>, operator: Operator) -> Result<Requirement, SelectorError> {
        let key = key.into();
        validate_key(&key)?;
        match &operator {
            Operator::Equals(value) | Operator::NotEquals(value) => validate_value(&key, value)?,
            Operator::In(values) | Operator::NotIn(values) => {
                if values.is_empty() {
                    let operator = if matches!(operator, Operator::In(_)) {
                        "In"
                    } else {
                        "NotIn"
                    };
                    return Err(SelectorError::MissingValues {
                        key,
                        operator: operator.to_owned(),
                    });
                }
                for value in values {
                    validate_value(&key, value)?;
                }
            }
            Operator::Exists | Operator::DoesNotExist => {}
        }
        Ok(Requirement { key, operator })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The test applied to the label.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &crate::StringMap) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::Equals(want) => value == Some(want),
            Operator::NotEquals(want) => value != Some(want),
            Operator::In(set) => value.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match &self.operator {
            Operator::Equals(value) => write!(f, "{key}={value}"),
            Operator::NotEquals(value) => write!(f, "{key}!={value}"),
            Operator::In(values) => write!(f, "{key} in ({})", join(values)),
            Operator::NotIn(values) => write!(f, "{key} notin ({})", join(values)),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

fn join(values: &BTreeSet<String>) -> String {
    values
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A label selector: a conjunction of [`Requirement`]s, or the selector that matches nothing.
///
/// Requirements are kept sorted by key (stable), so two selectors that differ only in the
/// order their requirements were written compare equal and print the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that matches every object (the empty string, an empty `LabelSelector`).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// The selector that matches no object (a workload without `spec.selector`).
    ///
    /// It has no string form: it prints as `<nothing>`, which does not parse, so it can
    /// never be mistaken for the empty selector.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements, in any order.
    pub fn new(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Parses the string form (`app=web,env in (prod,staging),!canary`).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        Parser::new(text).selector()
    }

    /// Converts the API's `LabelSelector`; an empty one matches everything.
    pub fn from_label_selector(selector: &v1::LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in &selector.match_labels {
            requirements.push(Requirement::new(
                key.clone(),
                Operator::Equals(value.clone()),
            )?);
        }
        for expression in &selector.match_expressions {
            let key = &expression.key;
            let values: BTreeSet<String> = expression.values.iter().cloned().collect();
            let operator = match expression.operator.as_str() {
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                op @ ("Exists" | "DoesNotExist") => {
                    if !values.is_empty() {
                        return Err(SelectorError::UnexpectedValues {
                            key: key.clone(),
                            operator: op.to_owned(),
                        });
                    }
                    if op == "Exists" {
                        Operator::Exists
                    } else {
                        Operator::DoesNotExist
                    }
                }
                other => {
                    return Err(SelectorError::InvalidOperator {
                        key: key.clone(),
                        operator: other.to_owned(),
                    })
                }
            };
            requirements.push(Requirement::new(key.clone(), operator)?);
        }
        Ok(Selector::new(requirements))
    }

    /// Converts a workload's optional `spec.selector`: a missing selector matches nothing
    /// (so a controller never adopts every pod in the namespace), an empty one everything.
    pub fn from_optional_label_selector(
        selector: Option<&v1::LabelSelector>,
    ) -> Result<Selector, SelectorError> {
        match selector {
            Some(selector) => Selector::from_label_selector(selector),
            None => Ok(Selector::nothing()),
        }
    }

    /// A selector requiring every given label to be present with its value (a Service's
    /// `spec.selector`, a pod's `nodeSelector`).
    pub fn from_labels(labels: &crate::StringMap) -> Result<Selector, SelectorError> {
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement::new(key.clone(), Operator::Equals(value.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector::new(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector matches everything (no requirements, and not [`Selector::nothing`]).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is [`Selector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &crate::StringMap) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Selector, SelectorError> {
        Selector::parse(text)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing {
            return f.write_str("<nothing>");
        }
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// A token of the label selector grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Comma,
    Open,
    Close,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("{s:?}"),
            Token::Not => "'!'".to_owned(),
            Token::Equals => "'='".to_owned(),
            Token::DoubleEquals => "'=='".to_owned(),
            Token::NotEquals => "'!='".to_owned(),
            Token::Comma => "','".to_owned(),
            Token::Open => "'('".to_owned(),
            Token::Close => "')'".to_owned(),
            Token::End => "the end of the selector".to_owned(),
        }
    }
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, '!' | '=' | ',' | '(' | ')')
}

fn tokenize(text: &str) -> Vec<(usize, Token)> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' | '=' => {
                if chars.next_if(|&(_, next)| next == '=').is_some() {
                    if c == '!' {
                        Token::NotEquals
                    } else {
                        Token::DoubleEquals
                    }
                } else if c == '!' {
                    Token::Not
                } else {
                    Token::Equals
                }
            }
            _ => {
                let mut end = at + c.len_utf8();
                while let Some((i, next)) = chars.next_if(|&(_, next)| !is_special(next)) {
                    end = i + next.len_utf8();
                }
                Token::Ident(text[at..end].to_owned())
            }
        };
        tokens.push((at, token));
    }
    tokens.push((text.len(), Token::End));
    tokens
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    next: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            tokens: tokenize(text),
            next: 0,
        }
    }

    fn peek(&self) -> &Token {
        self.tokens
            .get(self.next)
            .map_or(&Token::End, |(_, token)| token)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.next < self.tokens.len() {
            self.next += 1;
        }
        token
    }

    fn error(&self, expected: &str) -> SelectorError {
        let (at, found) = self
            .tokens
            .get(self.next)
            .map_or((self.text.len(), &Token::End), |(at, token)| (*at, token));
        SelectorError::Syntax {
            selector: self.text.to_owned(),
            column: self.text[..at].chars().count() + 1,
            message: format!("expected {expected}, found {}", found.describe()),
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if *self.peek() == Token::End {
            return Ok(Selector::everything());
        }
        loop {
            requirements.push(self.requirement()?);
            match self.peek() {
                Token::Comma => {
                    self.bump();
                }
                Token::End => break,
                _ => return Err(self.error("',' or the end of the selector")),
            }
        }
        Ok(Selector::new(requirements))
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        match self.peek().clone() {
            Token::Not => {
                self.bump();
                match self.peek().clone() {
                    Token::Ident(key) => {
                        self.bump();
                        Requirement::new(key, Operator::DoesNotExist)
                    }
                    _ => Err(self.error("a label key after '!'")),
                }
            }
            Token::Ident(key) => {
                self.bump();
                validate_key(&key)?;
                let operator = match self.peek().clone() {
                    Token::Comma | Token::End => Operator::Exists,
                    op @ (Token::Equals | Token::DoubleEquals | Token::NotEquals) => {
                        self.bump();
                        let value = match self.peek().clone() {
                            Token::Ident(value) => {
                                self.bump();
                                value
                            }
                            Token::Comma | Token::End => String::new(),
                            _ => return Err(self.error("a label value")),
                        };
                        if op == Token::NotEquals {
                            Operator::NotEquals(value)
                        } else {
                            Operator::Equals(value)
                        }
                    }
                    Token::Ident(word) if word == "in" || word == "notin" => {
                        self.bump();
                        let values = self.values()?;
                        if word == "in" {
                            Operator::In(values)
                        } else {
                            Operator::NotIn(values)
                        }
                    }
                    _ => {
                        return Err(self.error(
                            "an operator ('=', '==', '!=', 'in', 'notin'), ',' or the end of the selector",
                        ))
                    }
                };
                Requirement::new(key, operator)
            }
            _ => Err(self.error("a label key or '!'")),
        }
    }

    /// `( value? (, value?)* )`; an omitted value is the empty one.
    fn values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if *self.peek() != Token::Open {
            return Err(self.error("'(' after 'in' or 'notin'"));
        }
        self.bump();
        let mut values = BTreeSet::new();
        loop {
            let value = match self.peek().clone() {
                Token::Ident(value) => {
                    self.bump();
                    value
                }
                Token::Comma | Token::Close => String::new(),
                _ => return Err(self.error("a label value, ',' or ')'")),
            };
            values.insert(value);
            match self.bump() {
                Token::Comma => continue,
                Token::Close => break,
                _ => {
                    self.next -= 1;
                    return Err(self.error("',' or ')'"));
                }
            }
        }
        Ok(values)
    }
}

const MAX_NAME: usize = 63;
const MAX_PREFIX: usize = 253;

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters, not empty.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name part must not be empty".to_owned());
    }
    if name.len() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters"));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if let Some(bad) = name
        .chars()
        .find(|&c| !(alnum(c) || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{bad:?} is not allowed; use letters, digits, '-', '_' and '.'"
        ));
    }
    if !name.starts_with(alnum) || !name.ends_with(alnum) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A DNS subdomain: lowercase letters, digits, '-' and '.', at most 253 characters, each
/// dot-separated part starting and ending with a letter or digit.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the prefix before '/' must not be empty".to_owned());
    }
    if prefix.len() > MAX_PREFIX {
        return Err(format!(
            "the prefix must be at most {MAX_PREFIX} characters"
        ));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    for part in prefix.split('.') {
        if let Some(bad) = part.chars().find(|&c| !(alnum(c) || c == '-')) {
            return Err(format!(
                "the prefix {prefix:?} must be a DNS subdomain; {bad:?} is not allowed"
            ));
        }
        if !part.starts_with(alnum) || !part.ends_with(alnum) {
            return Err(format!(
                "the prefix {prefix:?} must be a DNS subdomain: each '.'-separated part starts and ends with a lowercase letter or digit"
            ));
        }
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |reason: String| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    match key.split_once('/') {
        Some((prefix, name)) => {
            check_prefix(prefix).map_err(invalid)?;
            if name.contains('/') {
                return Err(invalid("must contain at most one '/'".to_owned()));
            }
            check_name(name).map_err(invalid)
        }
        None => check_name(key).map_err(invalid),
    }
}

fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value).map_err(|reason| SelectorError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

// ---------------------------------------------------------------------------- fields

/// The test a [`FieldRequirement`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// The field has this value (`=`, `==`).
    Equals,
    /// The field has another value (`!=`).
    NotEquals,
}

/// One condition on one field (`spec.nodeName=n1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
}

impl FieldRequirement {
    /// A requirement on a field path (`status.phase`); whether the kind supports the field
    /// is checked by [`FieldSelector::check`].
    pub fn new(
        field: impl Into<String>,
        operator: FieldOperator,
        value: impl Into<String>,
    ) -> Result<FieldRequirement, SelectorError> {
        let field = field.into();
        check_field_path(&field).map_err(|message| SelectorError::Syntax {
            column: 1,
            selector: field.clone(),
            message,
        })?;
        Ok(FieldRequirement {
            field,
            operator,
            value: value.into(),
        })
    }

    /// The field path.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// `=` or `!=`.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value compared with.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}", self.field)?;
        for c in self.value.chars() {
            if matches!(c, '\\' | ',' | '=') {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A field selector: a conjunction of [`FieldRequirement`]s (`metadata.name=web,status.phase!=Failed`).
///
/// Values may contain `,`, `=` and `\` escaped with a backslash; whitespace around fields
/// and values is ignored. Requirements are kept sorted by field (stable).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// A selector from requirements, in any order.
    pub fn new(mut requirements: Vec<FieldRequirement>) -> FieldSelector {
        requirements.sort_by(|a, b| a.field.cmp(&b.field));
        FieldSelector { requirements }
    }

    /// Parses the string form. Field names are checked for syntax only; use
    /// [`FieldSelector::check`] before matching objects of a kind.
    pub fn parse(text: &str) -> Result<FieldSelector, SelectorError> {
        let syntax = |at: usize, message: String| SelectorError::Syntax {
            selector: text.to_owned(),
            column: text[..at].chars().count() + 1,
            message,
        };
        if text.trim().is_empty() {
            return Ok(FieldSelector::everything());
        }
        let mut requirements = Vec::new();
        for (start, term) in split_terms(text) {
            let (op_at, op_len, operator) = find_operator(term).ok_or_else(|| {
                syntax(
                    start,
                    format!("expected field=value, field==value or field!=value, found {term:?}"),
                )
            })?;
            let field = term[..op_at].trim();
            check_field_path(field).map_err(|message| syntax(start, message))?;
            let raw = term[op_at + op_len..].trim();
            let value_at = start + op_at + op_len;
            let value = unescape(raw).map_err(|(offset, message)| {
                let lead = term[op_at + op_len..].len() - term[op_at + op_len..].trim_start().len();
                syntax(value_at + lead + offset, message)
            })?;
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value,
            });
        }
        Ok(FieldSelector::new(requirements))
    }

    /// The requirements, sorted by field.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value a `field=value` requirement pins the field to, if any (lets the caller use
    /// an index, e.g. pods by `spec.nodeName`).
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Fails when a field cannot be selected on for `kind`, naming the fields that can.
    pub fn check(&self, kind: Kind) -> Result<(), SelectorError> {
        for requirement in &self.requirements {
            if !supported_fields(kind).any(|f| f == requirement.field) {
                return Err(SelectorError::UnsupportedField {
                    field: requirement.field.clone(),
                    kind,
                    supported: supported_fields(kind).collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    /// Whether the object satisfies every requirement. A requirement on a field the
    /// object's kind does not support never matches; call [`FieldSelector::check`] first
    /// to report it instead.
    pub fn matches(&self, object: &Object) -> bool {
        self.requirements.iter().all(|r| {
            field_value(object, &r.field).is_some_and(|value| match r.operator {
                FieldOperator::Equals => value == r.value,
                FieldOperator::NotEquals => value != r.value,
            })
        })
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(text)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Splits on commas not escaped by a backslash, with each term's byte offset.
fn split_terms(text: &str) -> Vec<(usize, &str)> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push((start, &text[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push((start, &text[start..]));
    terms
}

/// The first unescaped `!=`, `==` or `=` in a term: (byte offset, length, operator).
fn find_operator(term: &str) -> Option<(usize, usize, FieldOperator)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((i, 2, FieldOperator::NotEquals))
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => return Some((i, 2, FieldOperator::Equals)),
            b'=' => return Some((i, 1, FieldOperator::Equals)),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Resolves `\\`, `\,` and `\=`; reports the byte offset of a bad escape.
fn unescape(raw: &str) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, next @ ('\\' | ',' | '='))) => out.push(next),
            Some((_, next)) => {
                return Err((
                    at,
                    format!("invalid escape '\\{next}'; only '\\\\', '\\,' and '\\=' are allowed"),
                ))
            }
            None => return Err((at, "a value cannot end with a lone '\\'".to_owned())),
        }
    }
    Ok(out)
}

/// `segment(.segment)*` with segments of letters and digits, starting with a letter.
fn check_field_path(field: &str) -> Result<(), String> {
    let ok = !field.is_empty()
        && field.split('.').all(|segment| {
            segment.starts_with(|c: char| c.is_ascii_alphabetic())
                && segment.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field:?} is not a field path like metadata.name or spec.nodeName"
        ))
    }
}

const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

fn kind_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "spec.nodeName",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.restartPolicy",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Kind::Node => &["spec.unschedulable"],
        Kind::Namespace => &["status.phase"],
        Kind::Secret => &["type"],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
            "reportingComponent",
        ],
        _ => &[],
    }
}

/// The fields a field selector may name for `kind`.
pub fn supported_fields(kind: Kind) -> impl Iterator<Item = &'static str> {
    COMMON_FIELDS
        .iter()
        .chain(kind_fields(kind).iter())
        .copied()
}

/// The value of a selectable field (an unset field reads as its default, as in
/// Kubernetes), or `None` when the kind does not support the field.
fn field_value<'a>(object: &'a Object, field: &str) -> Option<Cow<'a, str>> {
    let meta = object.metadata();
    let borrowed = |s: &'a str| Some(Cow::Borrowed(s));
    match field {
        "metadata.name" => return borrowed(&meta.name),
        "metadata.namespace" => return borrowed(&meta.namespace),
        _ => {}
    }
    match object {
        Object::Pod(pod) => {
            let spec = pod.spec.as_ref();
            let status = pod.status.as_ref();
            let spec_field =
                |get: fn(&'a v1::PodSpec) -> &'a str| Some(Cow::Borrowed(spec.map_or("", get)));
            let status_field =
                |get: fn(&'a v1::PodStatus) -> &'a str| Some(Cow::Borrowed(status.map_or("", get)));
            match field {
                "spec.nodeName" => spec_field(|s| &s.node_name),
                "spec.schedulerName" => spec_field(|s| &s.scheduler_name),
                "spec.serviceAccountName" => spec_field(|s| &s.service_account_name),
                "spec.restartPolicy" => spec_field(|s| &s.restart_policy),
                "status.phase" => status_field(|s| &s.phase),
                "status.podIP" => status_field(|s| &s.pod_ip),
                "status.nominatedNodeName" => status_field(|s| &s.nominated_node_name),
                _ => None,
            }
        }
        Object::Node(node) => match field {
            "spec.unschedulable" => {
                let unschedulable = node.spec.as_ref().is_some_and(|s| s.unschedulable);
                borrowed(if unschedulable { "true" } else { "false" })
            }
            _ => None,
        },
        Object::Namespace(namespace) => match field {
            "status.phase" => borrowed(namespace.status.as_ref().map_or("", |s| &s.phase)),
            _ => None,
        },
        Object::Secret(secret) => match field {
            "type" => borrowed(&secret.r#type),
            _ => None,
        },
        Object::Event(event) => {
            let involved = event.involved_object.as_ref();
            let involved_field = |get: fn(&'a v1::ObjectReference) -> &'a str| {
                Some(Cow::Borrowed(involved.map_or("", get)))
            };
            match field {
                "involvedObject.kind" => involved_field(|o| &o.kind),
                "involvedObject.namespace" => involved_field(|o| &o.namespace),
                "involvedObject.name" => involved_field(|o| &o.name),
                "involvedObject.uid" => involved_field(|o| &o.uid),
                "involvedObject.apiVersion" => involved_field(|o| &o.api_version),
                "involvedObject.resourceVersion" => involved_field(|o| &o.resource_version),
                "involvedObject.fieldPath" => involved_field(|o| &o.field_path),
                "reason" => borrowed(&event.reason),
                "type" => borrowed(&event.r#type),
                "reportingComponent" => borrowed(&event.reporting_component),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "selector_test.rs"]
mod tests;
