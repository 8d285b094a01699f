//! Finite-state abstractions of recurrent policies (Koul et al. 2019, "Learning Finite State Representations of
//! Recurrent Policy Networks") and differential integrated gradients on them:
//!
//! * [`machine`]: Moore machines built from recorded traces, minimised, played;
//! * [`mmn`]: a GRU policy with quantised bottlenecks inserted (a Moore machine network), stepped and played;
//! * [`pipeline`]: from a trained run to a minimised machine — bottleneck data, bottleneck training with early
//!   stopping on the inserted network's score, fine-tuning, extraction, minimisation — every stage resumable from
//!   its own files;
//! * [`output`]: the seed's text table, JSON, DOT and an SVG drawing of a machine;
//! * [`diff_ig`]: differential integrated gradients — which pixels (features) changed which observation bits.

pub mod decisions;
pub mod diff_ig;
pub mod machine;
pub mod mmn;
pub mod output;
pub mod pipeline;
pub mod play;
pub mod report;

pub use machine::*;
