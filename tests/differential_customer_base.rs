//! Placeholder: filled by the family's differential tests.
