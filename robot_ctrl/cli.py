"""`robot-ctrl`: run the stack, the demo and the benchmarks.

    robot-ctrl sim   [--robot panda] [--mode effort] [--timing lockstep|realtime] [--no-driver]
    robot-ctrl demo  [--out out/demo] [--timing realtime|lockstep] [--no-video]
    robot-ctrl bench sim  [--seconds 5] [--json]
    robot-ctrl bench loop [--lockstep] [--seconds 10] [--json]
    robot-ctrl bench safety [--mode effort|velocity] [--steps 4000] [--falsify N] [--json]
    robot-ctrl bench policy [--carp CKPT] [--diffusion CKPT] [--calls 50] [--json]
    robot-ctrl collect --task TASK [--episodes 100] [--noise X] [--disturb P] [--out out/data/TASK.zarr]
    robot-ctrl convert BAG [BAG ...] --task TASK --out PATH [--dt 0.1] [--append]   (MCAP → dataset)
    robot-ctrl train --policy carp|diffusion|mlp --task TASK [--data PATH] [--out DIR] [--resume]
    robot-ctrl eval  CKPT [--task TASK] [--episodes 50] [--out DIR] [--sampler ddim|ddpm] [--json]
    robot-ctrl episodes CKPT [--episodes 3] [--seed 2000] [--out DIR]   (through the ROS graph)

TASK: reach, push, pick_place, peg_in_hole, or metaworld:<name>-v3 (extra: robot_ctrl[metaworld]).
"""
from __future__ import annotations

import argparse
import json
import sys

# the simulator's command interfaces (robot_ctrl.sim.world.COMMAND_MODES), spelled out here so the
# learning commands also run where only the learning stack is installed (the Meta-World venv)
COMMAND_MODES = ("effort", "position", "velocity")


def _stack_args(p: argparse.ArgumentParser, timing: str) -> None:
    p.add_argument("--robot", default="panda", help="robot name (config/robots/<name>.yaml) or YAML path")
    p.add_argument("--mode", default="effort", choices=COMMAND_MODES, help="command interface")
    p.add_argument("--timing", default=timing, choices=("realtime", "lockstep"))


def cmd_sim(args) -> int:
    import rclpy

    from robot_ctrl.ros.env import use_loopback
    from robot_ctrl.ros.runner import spin
    from robot_ctrl.stack import StackOptions, make_nodes, ros_args

    if args.loopback:
        use_loopback()
    rclpy.init(args=ros_args())
    try:
        nodes = make_nodes(StackOptions(args.robot, args.mode, args.timing), driver=not args.no_driver)
        spin(nodes)
    finally:
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def cmd_demo(args) -> int:
    from pathlib import Path

    from robot_ctrl.demo import run_demo
    from robot_ctrl.paths import checkpoint_path

    summary = run_demo(out=args.out, robot=args.robot, mode=args.mode, timing=args.timing,
                       video=not args.no_video, segment_s=args.segment_s, gif_fps=args.gif_fps)
    ok = summary["ok"]
    ckpt = Path(args.checkpoint) if args.checkpoint else checkpoint_path("carp_pick_place.safetensors")
    if args.policy_episodes > 0 and args.robot == "panda" and args.mode == "effort":
        from robot_ctrl.policy_demo import run_policy_episodes

        if not ckpt.is_file():
            raise FileNotFoundError(f"policy checkpoint {ckpt} not found (train one: robot-ctrl train --policy carp "
                                    f"--task pick_place; or pass --policy-episodes 0)")
        summary["policy"] = run_policy_episodes(ckpt, Path(args.out) / "policy", episodes=args.policy_episodes,
                                                video=not args.no_video, gif_fps=args.gif_fps)
        ok = ok and summary["policy"]["ok"]
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary))
    return 0 if ok else 1


def cmd_episodes(args) -> int:
    from robot_ctrl.policy_demo import run_policy_episodes

    s = run_policy_episodes(args.checkpoint, args.out, task=args.task, episodes=args.episodes, seed=args.seed,
                            video=not args.no_video, quiet=args.json)
    if args.json:
        print(json.dumps(s))
    return 0 if s["ok"] else 1


def _teleop_session(args, record=None, episodes=None) -> int:
    from robot_ctrl.teleop.session import run_session

    try:
        dev_args = json.loads(args.device_args)
    except json.JSONDecodeError as e:
        raise SystemExit(f"robot-ctrl: --device-args is not JSON: {e}") from None
    if not isinstance(dev_args, dict):
        raise SystemExit("robot-ctrl: --device-args must be a JSON object")
    mode = args.mode or ("shared" if args.checkpoint else "teleop")
    teleop_params = {"clutch_pose": True} if args.clutch_pose else None
    s = run_session(args.device, dev_args, task=args.task, checkpoint=args.checkpoint, prompt_mode=mode,
                    teleop_params=teleop_params, duration=args.duration, record=record, episodes=episodes, seed=args.seed,
                    keep_failures=getattr(args, "keep_failures", False), quiet=args.json)
    if args.json:
        print(json.dumps(s))
    return 0


def cmd_teleop(args) -> int:
    return _teleop_session(args)


def cmd_record(args) -> int:
    out = args.out or f"out/data/{args.task}_teleop.zarr"
    return _teleop_session(args, record=out, episodes=args.episodes)


def cmd_bench(args) -> int:
    from robot_ctrl import bench

    if args.what == "sim":
        result = bench.bench_sim(robot=args.robot, seconds=args.seconds)
    elif args.what == "policy":
        from robot_ctrl.learning.bench import bench_policy

        result = bench_policy(carp=args.carp, diffusion=args.diffusion, calls=args.calls)
    elif args.what == "teleop":
        from robot_ctrl.teleop.latency import bench_latency, summary_rows
        from robot_ctrl.teleop.study import operator_study

        result = {"benchmark": "teleop"}
        if not args.no_latency:
            result["latency"] = bench_latency(trials=args.trials)
        if not args.no_study:
            ckpt = args.checkpoint
            if ckpt is None:
                from robot_ctrl.paths import checkpoint_path

                ckpt = str(checkpoint_path("mlp_reach.safetensors"))
            result["operator_study"] = operator_study(ckpt, episodes=args.episodes, noise_std=(args.noise, 0.0),
                                                      bias=(args.bias, 0.0), latency=args.latency,
                                                      dropout=args.dropout, rule=args.rule)
        if not args.json:  # the table shows one row per figure
            result = summary_rows(result)
    elif args.what == "faults":
        from robot_ctrl.ros.faults import BACKENDS, SCENARIOS, bench_faults

        result = bench_faults(scenarios=args.scenario or SCENARIOS, backends=args.backend or BACKENDS,
                              progress=not args.json)
        if not args.json:  # one row per scenario and backend
            rows = {"benchmark": "faults", "all_ok": result["all_ok"]}
            for r in result["results"]:
                figures = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                           if k not in ("scenario", "backend")}
                rows[f"{r['scenario']} ({r['backend']})"] = json.dumps(figures)
            result = rows
    elif args.what == "safety":
        result = bench.bench_safety(robot=args.robot, mode=args.mode, steps=args.steps,
                                    falsify_steps=args.falsify, progress=not args.json)
    else:
        result = bench.bench_loop(robot=args.robot, seconds=args.seconds, lockstep=args.lockstep)
    bench.report(result, as_json=args.json)
    return 0


def _default_data(task: str) -> str:
    return f"out/data/{task.replace(':', '_')}.zarr"


def cmd_collect(args) -> int:
    from robot_ctrl.learning.collect import collect

    out = args.out or _default_data(args.task)
    r = collect(args.task, args.episodes, out, noise=args.noise, seed=args.seed, progress=not args.json,
                append=args.append, disturb=args.disturb)
    summary = {"task": args.task, "dataset": str(out), "episodes": r.kept, "attempts": r.attempts,
               "disturbed": r.disturbed,
               "expert_success": r.kept / r.attempts, "mean_length": r.mean_length,
               "samples": int(len(r.dataset.obs))}
    print(json.dumps(summary) if args.json else
          f"{out}: {r.kept} episodes ({r.attempts} attempts), {summary['samples']} steps, mean length {r.mean_length:.1f}")
    return 0


def cmd_convert(args) -> int:
    from robot_ctrl.learning.mcap_convert import convert_mcap

    ds = convert_mcap(args.bags, args.out, args.task, dt=args.dt, append=args.append)
    summary = {"dataset": str(args.out), "task": ds.task, "episodes": ds.n_episodes,
               "successful": int(ds.success.sum()), "samples": int(len(ds.obs))}
    print(json.dumps(summary) if args.json else
          f"{args.out}: {summary['episodes']} episodes ({summary['successful']} successful), {summary['samples']} steps")
    return 0


def cmd_train(args) -> int:
    from pathlib import Path

    from robot_ctrl.learning.presets import load_preset
    from robot_ctrl.learning.train import train

    steps = None
    if args.steps is not None or args.tokenizer_steps is not None:
        base = load_preset(args.policy, args.preset).steps
        steps = dict(base)
        if args.steps is not None:
            steps["policy"] = args.steps
        if args.tokenizer_steps is not None:
            steps["tokenizer"] = args.tokenizer_steps
    cfg = load_preset(args.policy, args.preset, steps=steps, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, threads=args.threads, frame=args.frame,
                      model=json.loads(args.model) if args.model else None)
    data = args.data or _default_data(args.task)
    if not Path(data).exists():
        from robot_ctrl.learning.collect import collect

        print(f"{data} not found: collecting {args.episodes} scripted demonstrations of {args.task}", file=sys.stderr)
        collect(args.task, args.episodes, data, progress=True)
    out = args.out or f"out/train/{args.policy}_{args.task.replace(':', '_')}"
    summary = train(data, out, cfg, resume=args.resume, progress=True)
    print(json.dumps(summary) if args.json else f"checkpoint: {summary['checkpoint']} "
          f"({summary['parameters']} parameters, {summary['seconds']:.0f} s)")
    return 0


def cmd_eval(args) -> int:
    from robot_ctrl.learning.evaluate import evaluate

    kw = {}
    if args.sampler:
        kw["sampler"] = args.sampler
        if args.sampler_steps:
            kw["steps"] = args.sampler_steps
    out = args.out or "out/eval"
    r = evaluate(args.checkpoint, task=args.task, episodes=args.episodes, seed=args.seed, out=out,
                 action_steps=args.action_steps, progress=not args.json, predict_kwargs=kw, ensemble=args.ensemble)
    if args.json:
        print(json.dumps(r))
    else:
        lo, hi = r["success_ci95"]
        print(f"{r['policy']} on {r['task']}: success {r['successes']}/{r['episodes']} = {r['success_rate']:.0%} "
              f"(95% CI {lo:.0%}-{hi:.0%}); chunk p50 {r['chunk_ms_p50']:.2f} ms, p99 {r['chunk_ms_p99']:.2f} ms; "
              f"{out}/eval.json, {out}/eval.png")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="robot-ctrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sim", help="run sim + controller (+ demo driver) as ROS 2 nodes in one process")
    _stack_args(p, "lockstep")
    p.add_argument("--no-driver", action="store_true", help="do not start the demo driver")
    p.add_argument("--loopback", action="store_true", help="keep DDS on the loopback (test profile)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="headless demo: Panda through waypoints; MCAP, PNG, GIF, summary")
    _stack_args(p, "realtime")
    p.add_argument("--out", default="out/demo", help="output directory")
    p.add_argument("--no-video", action="store_true", help="skip the GIF")
    p.add_argument("--gif-fps", type=float, default=15.0,
                   help="frames per second of the GIFs (fewer: rendered faster, smaller files)")
    p.add_argument("--segment-s", type=float, default=2.0, help="seconds between waypoints")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--policy-episodes", type=int, default=3,
                   help="then this many pick-and-place episodes with the CARP checkpoint through the graph (0: skip)")
    p.add_argument("--checkpoint", default=None, help="policy checkpoint (default checkpoints/carp_pick_place)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("episodes", help="run a policy checkpoint for N episodes through the ROS graph (lockstep)")
    p.add_argument("checkpoint")
    p.add_argument("--task", default=None, help="default: the checkpoint's task")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=2000, help="task seed of the first episode")
    p.add_argument("--out", default="out/episodes")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_episodes)

    for name, helptext in (("teleop", "drive the simulated arm with a teleop device through the full graph"),
                           ("record", "record teleoperated demonstrations (with intervention flags) into a dataset")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--device", required=True, choices=("keyboard", "gamepad", "spacemouse", "web", "replay"))
        p.add_argument("--device-args", default="{}", help='device options as JSON, e.g. \'{"path": "p.jsonl"}\'')
        p.add_argument("--task", default="reach", help="task world (reach, push, pick_place, peg_in_hole)")
        p.add_argument("--checkpoint", default=None, help="a policy to share control with (shared autonomy)")
        p.add_argument("--mode", default=None, choices=("teleop", "shared", "guidance", "goal"),
                       help="prompt mode (default: teleop, or shared with --checkpoint)")
        p.add_argument("--clutch-pose", action="store_true",
                       help="publish the clutch pose form (/teleop/pose) instead of twists: hold the clutch "
                            "and move; the hand (or, in goal mode, the goal) follows from where it was at "
                            "the press (always on in goal mode)")
        p.add_argument("--seed", type=int, default=3000, help="task seed of the first episode")
        p.add_argument("--json", action="store_true")
        if name == "teleop":
            p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
            p.set_defaults(func=cmd_teleop)
        else:
            p.add_argument("--episodes", type=int, default=10)
            p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
            p.add_argument("--out", default=None, help="dataset (.zarr; appended to if it exists)")
            p.add_argument("--keep-failures", action="store_true", help="also keep failed episodes (flagged)")
            p.set_defaults(func=cmd_record)

    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("what", choices=("sim", "loop", "safety", "policy", "teleop", "faults"))
    p.add_argument("--scenario", action="append", default=None,
                   choices=("policy_kill", "state_stall", "command_stall", "storm", "stamp_jump", "estop"),
                   help="faults: a scenario (repeatable; default all)")
    p.add_argument("--backend", action="append", default=None, choices=("sim", "fake"),
                   help="faults: the simulator or the fake ros2_control hardware (repeatable; default both)")
    p.add_argument("--robot", default="panda")
    p.add_argument("--seconds", type=float, default=None, help="measurement length (wall s)")
    p.add_argument("--lockstep", action="store_true", help="loop: lockstep timing instead of realtime")
    p.add_argument("--mode", default="effort", choices=("effort", "velocity"), help="safety: command mode")
    p.add_argument("--steps", type=int, default=4000, help="safety: filter steps timed")
    p.add_argument("--falsify", type=int, default=0, metavar="N", help="safety: also run N falsification steps")
    p.add_argument("--carp", default=None, help="policy: CARP checkpoint (default: the preset, random weights)")
    p.add_argument("--diffusion", default=None, help="policy: diffusion checkpoint (default: the preset)")
    p.add_argument("--calls", type=int, default=50, help="policy: timed chunk predictions per sampler")
    p.add_argument("--checkpoint", default=None, help="teleop: reach policy for shared autonomy "
                                                      "(default checkpoints/mlp_reach.safetensors)")
    p.add_argument("--episodes", type=int, default=20, help="teleop: scripted-operator episodes per arm")
    p.add_argument("--noise", type=float, default=0.02, help="teleop: operator twist noise std (m/s)")
    p.add_argument("--bias", type=float, default=0.03, help="teleop: operator bias (m/s, random direction)")
    p.add_argument("--latency", type=float, default=0.2, help="teleop: operator link latency (s)")
    p.add_argument("--dropout", type=float, default=0.1, help="teleop: probability a device poll brings nothing")
    p.add_argument("--rule", default="blend", choices=("blend", "override"), help="teleop: shared-autonomy rule")
    p.add_argument("--trials", type=int, default=30, help="teleop: latency trials per device and per teleop_period")
    p.add_argument("--no-latency", action="store_true", help="teleop: skip the latency benchmark")
    p.add_argument("--no-study", action="store_true", help="teleop: skip the scripted-operator study")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("collect", help="record scripted demonstrations into a zarr dataset")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, default=100, help="successful episodes to keep")
    p.add_argument("--noise", type=float, default=None, help="expert noise (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="dataset path (default out/data/<task>.zarr)")
    p.add_argument("--append", action="store_true", help="add to an existing dataset")
    p.add_argument("--disturb", type=float, default=0.0,
                   help="share of episodes in which the object is knocked once to a nearby place "
                        "(demonstrations of recovery; push and pick-and-place)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("convert", help="recorded MCAP bags (ROS graph) → a zarr training dataset")
    p.add_argument("bags", nargs="+", help="rosbag2 directories or .mcap files")
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True, help="dataset path (.zarr)")
    p.add_argument("--dt", type=float, default=0.1, help="policy step (s) the recording is sampled at")
    p.add_argument("--append", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("train", help="train a policy (preset config/policies/<policy>.yaml)")
    p.add_argument("--policy", required=True, help="carp, diffusion or mlp")
    p.add_argument("--task", required=True)
    p.add_argument("--data", default=None, help="dataset (default out/data/<task>.zarr; collected if missing)")
    p.add_argument("--episodes", type=int, default=100, help="demonstrations to collect if the dataset is missing")
    p.add_argument("--out", default=None, help="output directory (default out/train/<policy>_<task>)")
    p.add_argument("--preset", default=None, help="training preset YAML (default config/policies/<policy>.yaml)")
    p.add_argument("--steps", type=int, default=None, help="policy-stage steps")
    p.add_argument("--tokenizer-steps", type=int, default=None, help="CARP tokenizer-stage steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--frame", choices=("hand", "task", "world"), default=None,
                   help="hand: hand-relative observation features and actions (the presets' default); "
                        "task: the planar object-to-goal frame (tasks with an object and a planar goal); "
                        "world: absolute coordinates")
    p.add_argument("--model", default=None, help="model config overrides as JSON, e.g. '{\"width\": 32}'")
    p.add_argument("--resume", action="store_true", help="continue from <out>/train_state.pt")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: success rate (95%% CI), chunk latency; JSON + PNG")
    p.add_argument("checkpoint")
    p.add_argument("--task", default=None, help="default: the task the checkpoint was trained on")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=10_000, help="first episode seed (training data uses 0...)")
    p.add_argument("--out", default=None, help="output directory (default out/eval)")
    p.add_argument("--action-steps", type=int, default=None, help="actions executed per chunk")
    p.add_argument("--ensemble", type=float, default=None,
                   help="temporal ensembling (ACT): average every live prediction of a step with weights "
                        "exp(-M*i), oldest first (use with --action-steps 1)")
    p.add_argument("--sampler", default=None, choices=("ddim", "ddpm"), help="diffusion sampler")
    p.add_argument("--sampler-steps", type=int, default=None, help="diffusion: DDIM steps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SystemExit:
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"robot-ctrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
