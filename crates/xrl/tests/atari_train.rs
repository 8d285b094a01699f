//! DQN on a real Atari game (feature `atari`, after `xrl atari setup`): the card `xrl train` makes, the pixel
//! replay in the loop, and a run killed after its first checkpoint resuming from the replay it saved.
#![cfg(feature = "atari")]

use xrl::new_run::{AgentKind, NewRun};
use xrl::pixel_replay::PixelReplay;
use xrl::run::{AgentCard, RunDir};
use xrl::train::train;

#[test]
fn dqn_trains_on_pong_from_a_pixel_replay_and_resumes_from_it() {
    let root = std::env::temp_dir().join(format!("xrl-atari-dqn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut card = NewRun { checkpoint_every: Some(1_000), ..NewRun::new("PongNoFrameskip-v4", AgentKind::Dqn, 2_000) }
        .card()
        .unwrap();
    // The Atari preset: CleanRL's dqn_atari.py on the Nature CNN over 4 stacked 84 × 84 frames, frames stored once.
    let AgentCard::Dqn(config) = &mut card.agent else { panic!("a DQN card") };
    assert_eq!((config.pixel_stack, config.clip_rewards, config.train_every), (Some(4), true, 4));
    assert_eq!(card.net.obs_shape, vec![4, 84, 84]);
    // Learning starts early so this short run updates.
    config.learning_starts = 600;
    let dir = RunDir::new(&root);
    dir.create(&card).unwrap();
    let mut short = card.clone();
    short.total_steps = 1_000;
    std::fs::write(dir.card_path(), toml::to_string(&short).unwrap()).unwrap();
    let device = xrl::nn::device::parse("cpu").unwrap();
    let s = train(&dir, &device, |_| {}).unwrap();
    assert_eq!(s.step, 1_000);
    assert_eq!(s.updates, (1_000 - 600) / 4);
    // The checkpoint's replay is the pixel form: every step's transition (3 frames ahead of n-step 1: all of them
    // emitted), each frame stored once.
    let bytes = std::fs::read(dir.checkpoint_file(&s.stem, "replay.bin")).unwrap();
    assert_eq!(&bytes[..8], b"XRLPIXR1");
    let replay = PixelReplay::read_from(&bytes, 1).unwrap();
    assert_eq!(replay.len(), 1_000);
    assert!(bytes.len() < 1_000 * (84 * 84 + 200), "{} bytes for 1,000 transitions", bytes.len());

    std::fs::write(dir.card_path(), toml::to_string(&card).unwrap()).unwrap();
    let s = train(&dir, &device, |_| {}).unwrap();
    assert_eq!((s.step, s.resumes, s.updates), (2_000, 1, (2_000 - 600) / 4));
    let bytes = std::fs::read(dir.checkpoint_file(&s.stem, "replay.bin")).unwrap();
    assert_eq!(PixelReplay::read_from(&bytes, 1).unwrap().len(), 2_000);
    std::fs::remove_dir_all(&root).unwrap();
}
