//! Integration tests of the API schema crate.

mod robustness;
