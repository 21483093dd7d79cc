"""The four stages of a trial, one module each, and what they share.

context.py   RunContext: where a study's run folder is and how to run (picklable settings, no resources)
plan.py      what each stage depends on (its hash), where it writes, whether it applies, its status
resources.py Resources: the per-process backend, stores, rollouts, encoders and FVD scorer, loaded once
runner.py    run_trial(): lock, .partial folder, meta.json, DONE, around one stage body
encode.py    captioned videos (or a synthetic source) -> the embedding store
train.py     the store -> a trained Spliter checkpoint
generate.py  prompts -> videos (lossless frames.npz for scoring, mp4/gif for people)
frame_baseline.py  the generate body of a baseline that renders frames itself (text2video_zero, animatediff)
score.py     the study's selected metric families -> scores.jsonl

This package file imports nothing, so importing one stage never pulls in the others.
"""
