// Package train runs MoCo-v2 pretraining with MoCHi hard negative mixing
// (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028) on one device.
//
// moco.go is the method in one place — query and key encoders, the
// momentum update, the queue, the logits and the loss — in the order of
// MoCo's builder.py. trainer.go is the loop around it: data, learning-rate
// schedule, progress, metrics, the kNN monitor and checkpoints (state.go),
// which resume a run exactly.
//
// # Run directory
//
//	<run.output_dir>/
//	  config.yaml         the effective config of the run
//	  metrics.jsonl       one JSON line per step and per epoch (statistics
//	                      on the steps run.stats_every picks)
//	  checkpoints/last.ckpt            the newest checkpoint
//	  checkpoints/epoch-NNNN.ckpt      every run.checkpoint_every epochs
//	  summary.json        written when the run completes
package train
