"""Film a saved policy (or a stored demonstration) as an mp4, with step, return and learned return overlaid.

    python rec_video.py --load_path runs/ppo/checkpoints/step_0025000000.pt --num_screens 4 --out video.mp4
    python rec_video.py --demo runs/trex/demos/demos/<id>.npz --out demo.mp4

Recording uses its own env, never a training one. Encoding is PyAV's libx264 (yuv420p), written atomically.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import GAMES, MODES, OBS_SHAPE
from baseline_agent.evaluation import StepView, default_levels, procgen_options, run_episodes
from toolkit.cli import UserError, run_main
from toolkit.config import option, parse_config
from toolkit.files import atomic_write, exclusive_file
from toolkit.runtime import RuntimeConfig
from trex.policy.learned_reward import load_learned_reward
from trex.reward.evaluation import frame_rewards

TILE = 512  # Procgen's render size; 64x64 observations are scaled up 8x to match


@dataclass
class VideoConfig(RuntimeConfig):
    """What to film and how."""

    load_path: str = option(
        "", "checkpoint file to film, or a checkpoints folder: its newest (or use --demo)", path="file_or_folder"
    )
    demo: str = option("", "demonstration .npz to film instead of a checkpoint (its 64x64 frames)", path="file")
    out: str = option("video.mp4", "mp4 file to write", path="new_file")
    num_episodes: int = option(1, "episodes per screen", min=1)
    num_screens: int = option(1, "environments filmed side by side in a grid", min=1, max=16)
    view: str = option(
        "render", "render: Procgen's 512x512 frames; obs: the agent's 64x64 frames scaled up", choices=("render", "obs")
    )
    env_name: str = option("", "Procgen game (empty = the checkpoint's own or the demo index's)", choices=("", *GAMES))
    distribution_mode: str = option("", "distribution mode (empty = the checkpoint's own)", choices=("", *MODES))
    start_level: int | None = option(
        None, "first level seed (none = the levels right after the checkpoint's training levels)", min=0
    )
    num_levels: int = option(100_000, "number of levels from start_level (0 = the whole distribution)", min=0)
    greedy: bool = option(False, "take the most likely action instead of sampling")
    seed: int = option(0, "random seed (envs and action sampling)", min=0)
    max_steps: int = option(0, "steps filmed per episode at most (0 = the whole episode)", min=0)
    fps: int = option(15, "frames per second of the video", min=1, max=120)
    reward_model: str = option("", "reward_model.pt whose learned return is overlaid as it accumulates", path="file")

    def check(self) -> None:
        if bool(self.load_path) == bool(self.demo):
            raise UserError("config keys 'load_path' and 'demo': name exactly one of them")
        super().check()


class Mp4Writer:
    """Stream RGB frames into an H.264 mp4 (sizes must be even for yuv420p)."""

    def __init__(self, path: str, width: int, height: int, fps: int):
        self.container = av.open(path, mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        self.frames += 1

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()


FONT = ImageFont.load_default(size=22)


def tile(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """A TILE x TILE frame with `lines` on a dark band at the top left."""
    if frame.shape[0] != TILE:
        frame = frame.repeat(TILE // frame.shape[0], 0).repeat(TILE // frame.shape[1], 1)
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 240, 8 + 26 * len(lines)), fill=(0, 0, 0))
    for k, text in enumerate(lines):
        draw.text((8, 4 + 26 * k), text, fill=(255, 255, 255), font=FONT)
    return np.asarray(image)


def overlay_lines(step: int, ret: float, learned: float | None) -> list[str]:
    lines = [f"step {step}", f"return {ret:.2f}"]
    return lines if learned is None else [*lines, f"learned {learned:.2f}"]


def grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles in a near-square grid, row by row; empty cells stay black."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    out = np.zeros((rows * TILE, cols * TILE, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = t
    return out


def load_demo_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(obs uint8 [T, 64, 64, 3], rewards [T]) of a demonstration .npz, one clear line if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            obs, rewards = data["obs"], data["rewards"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read demonstration {path} ({type(err).__name__})") from None
    if obs.dtype != np.uint8 or obs.shape[1:] != OBS_SHAPE or len(obs) == 0 or rewards.shape != (len(obs),):
        raise UserError(f"{path} is not a demonstration: expected obs uint8 [T, 64, 64, 3] and rewards [T]")
    return obs, rewards


def demo_game(path: str) -> str | None:
    """The game of a demo, from the index.csv of the demo folder it sits in (trex/demos/store.py), if any."""
    from trex.demos.store import read_index

    target = Path(path).resolve()
    for folder in (target.parent, target.parent.parent):
        for record in read_index(folder, check_files=False):
            if (folder / record.file).resolve() == target:
                return record.game
    return None


def film_demo(cfg: VideoConfig, writer_path: str, device: torch.device) -> tuple[int, str]:
    obs, rewards = load_demo_file(cfg.demo)
    learned = None
    if cfg.reward_model:
        env_name = cfg.env_name or demo_game(cfg.demo)
        if env_name is None:
            raise UserError(f"cannot tell the game of {cfg.demo} (no index.csv names it): pass --env_name")
        reward_fn = load_learned_reward(cfg.reward_model, env_name, cfg.distribution_mode or None, device)
        learned = np.cumsum(frame_rewards(reward_fn, obs, device))
    returns = np.cumsum(rewards.astype(np.float64))
    writer = Mp4Writer(writer_path, TILE, TILE, cfg.fps)
    for t in range(len(obs)):
        writer.add(tile(obs[t], overlay_lines(t + 1, returns[t], None if learned is None else learned[t])))
    writer.close()
    summary = f"return {returns[-1]:.2f}" + ("" if learned is None else f", learned return {learned[-1]:.2f}")
    return writer.frames, f"demo of {len(obs)} steps, {summary}"


def film_policy(cfg: VideoConfig, writer_path: str, device: torch.device) -> tuple[int, str]:
    policy, meta = load_policy(cfg.load_path, device)
    env_name = cfg.env_name or meta["model_spec"]["env_name"]
    mode = cfg.distribution_mode or meta["model_spec"]["distribution_mode"]
    levels = default_levels(meta["config"], cfg.start_level, cfg.num_levels)
    reward_fn = load_learned_reward(cfg.reward_model, env_name, mode, device) if cfg.reward_model else None
    height, width = grid([np.zeros((TILE, TILE, 3), np.uint8)] * cfg.num_screens).shape[:2]
    writer = Mp4Writer(writer_path, width, height, cfg.fps)
    tiles = [np.zeros((TILE, TILE, 3), np.uint8)] * cfg.num_screens

    def on_step(view: StepView) -> None:
        if not view.recording.any():
            return
        for i in np.flatnonzero(view.recording):
            frame = view.renders[i] if view.renders is not None else view.obs[i]
            tiles[i] = tile(
                frame,
                overlay_lines(
                    int(view.length[i]), float(view.ret[i]), None if view.learned is None else float(view.learned[i])
                ),
            )
        writer.add(grid(tiles))

    episodes = run_episodes(
        policy,
        env_name,
        mode,
        levels,
        cfg.num_episodes * cfg.num_screens,
        cfg.num_screens,
        cfg.seed,
        cfg.greedy,
        device,
        reward_fn,
        cfg.max_steps or None,
        render=cfg.view == "render",
        on_step=on_step,
        **procgen_options(meta["config"]),
    )
    writer.close()
    rets = ", ".join(f"{ep['ret']:.2f}" for ep in episodes)
    return writer.frames, f"{env_name} {mode}, {len(episodes)} episode(s), returns {rets}"


def main(argv: list[str]) -> None:
    cfg = parse_config(VideoConfig, argv, "rec_video.py", __doc__.splitlines()[0])
    device = cfg.setup()
    film = film_demo if cfg.demo else film_policy
    result: list[tuple[int, str]] = []
    with exclusive_file(cfg.out):
        atomic_write(cfg.out, lambda tmp: result.append(film(cfg, tmp, device)))
    frames, what = result[0]
    print(f"wrote {cfg.out}: {frames} frames at {cfg.fps} fps; {what}")


if __name__ == "__main__":
    run_main(main)
