//! bexpr-style `?filter=` expressions.
