//! Go-style flag normalisation: `-bootstrap-expect=3` becomes `--bootstrap-expect=3`.
