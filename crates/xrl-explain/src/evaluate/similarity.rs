//! See the module list in `evaluate`.
