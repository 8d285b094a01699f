use thiserror::Error;

/// Everything that can go wrong when making, stepping or editing an environment.
/// Each message says what was wrong and what to do about it.
#[derive(Debug, Error)]
pub enum EnvError {
    #[error("unknown environment id `{id}`; known ids: {}", known.join(", "))]
    UnknownId { id: String, known: Vec<String> },
    #[error("action {action} is out of range for {id}: it has {n} actions (0..={max})", max = n - 1)]
    ActionOutOfRange { id: String, action: usize, n: usize },
    #[error("{id} takes {expected} actions, but a {got} action was given")]
    ActionKind { id: String, expected: &'static str, got: &'static str },
    #[error("{id} expects a continuous action of {expected} value(s), got {got}")]
    ActionShape { id: String, expected: usize, got: usize },
    #[error("continuous action for {id} contains a non-finite value ({value})")]
    ActionNotFinite { id: String, value: f32 },
    #[error("the episode of {id} has ended (terminated or truncated); call reset() before stepping again")]
    NeedsReset { id: String },
    #[error("invalid state document for {id}: {message}")]
    InvalidState { id: String, message: String },
    #[error("invalid option for {id}: {message}")]
    InvalidOption { id: String, message: String },
}

impl EnvError {
    pub(crate) fn state(id: &str, message: impl Into<String>) -> Self {
        EnvError::InvalidState { id: id.to_string(), message: message.into() }
    }
}
