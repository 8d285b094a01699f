//! The recurrent core between torso and head: an LSTM or a GRU run over sequences with an explicit state.

use crate::{Core as CoreSpec, CoreKind, RecurrentState};
use burn::module::Module;
use burn::nn::{Gru, GruConfig, Lstm, LstmConfig, LstmState};
use burn::tensor::{Device, Tensor};

// One core per network: the variants' sizes do not matter (and burn's derive takes the layers unboxed).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum CoreModule {
    Lstm(Lstm),
    Gru(Gru),
}

impl CoreModule {
    pub fn new(spec: CoreSpec, input: usize, device: &Device) -> Self {
        match spec.kind {
            CoreKind::Lstm => CoreModule::Lstm(LstmConfig::new(input, spec.hidden, true).init(device)),
            CoreKind::Gru => CoreModule::Gru(GruConfig::new(input, spec.hidden, true).init(device)),
        }
    }

    /// Runs over `[batch, steps, features]` from `state` (zeros when `None`); returns every step's output and the
    /// final state.
    pub fn forward(&self, seq: Tensor<3>, state: Option<RecurrentState>) -> (Tensor<3>, RecurrentState) {
        let [b, t, _] = seq.dims();
        match self {
            CoreModule::Lstm(lstm) => {
                let init = state.map(|s| {
                    let cell = s.cell.unwrap_or_else(|| s.hidden.zeros_like());
                    LstmState::new(cell, s.hidden)
                });
                let (out, s) = lstm.forward(seq, init);
                (out, RecurrentState { hidden: s.hidden, cell: Some(s.cell) })
            }
            CoreModule::Gru(gru) => {
                let out = gru.forward(seq, state.map(|s| s.hidden));
                let h = out.dims()[2];
                let last: Tensor<2> = out.clone().slice([0..b, t - 1..t, 0..h]).reshape([b, h]);
                (out, RecurrentState { hidden: last, cell: None })
            }
        }
    }
}
