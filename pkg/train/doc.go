// Package train runs MoCo-v2 pretraining with MoCHi hard negative mixing
// (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028) on one device.
//
// The method itself — query and key encoders, the momentum update, the
// queue, the logits and the loss — is pkg/moco. trainer.go is the loop
// around it: data, learning-rate schedule, progress, metrics, the kNN
// monitor and checkpoints (state.go; their content is pkg/runstate), which
// resume a run exactly.
//
// # Run directory
//
//	<run.output_dir>/
//	  config.yaml         the effective config of the run, with provenance
//	  metrics.jsonl       one JSON line per record, with its kind (step,
//	                      epoch, eval, resume) and time
//	  checkpoints/last.ckpt            the newest checkpoint
//	  checkpoints/epoch-NNNN.ckpt      the end of epoch NNNN (from 0), every
//	                                   run.checkpoint_every epochs
//	  summary.json        written when the run completes
//	  mochi.lock          the lock of the process using the directory
//
// rundir.go keeps a directory to one run: the lock, the refusal of a new
// run over an old one, the removal of a killed run's temporary files.
package train
