// Batch normalisation on channel-blocked activations (batchnorm_blocked.c).

// mochi_bnb is the shape of one call: x N×C×HW in channel blocks of block
// (a multiple of 8 dividing c), split-BN groups, and the first of the 8
// channels the call handles, c0 (a multiple of 8).
typedef struct {
	long n, c, hw, groups, block, c0;
} mochi_bnb;

// mochi_bnb_train is BatchNormTrain (with relu BatchNormReLUTrain, with r
// not NULL too BatchNormAddReLUTrain) of channels c0…c0+7: y, mean and
// inv_std (groups×c), the running statistics.
void mochi_bnb_train(mochi_bnb s, const float *x, const float *r, float *y, const float *gamma, const float *beta,
	float *mean, float *inv_std, float *run_mean, float *run_var, double momentum, double eps, int relu);

// mochi_bnb_infer is BatchNormInfer (with relu BatchNormReLUInfer, with r
// not NULL too BatchNormAddReLUInfer) of channels c0…c0+7.
void mochi_bnb_infer(mochi_bnb s, const float *x, const float *r, float *y, const float *gamma, const float *beta,
	const float *run_mean, const float *run_var, double eps, int relu);

// mochi_bnb_backward is BatchNormBackward (with relu BatchNormReLUBackward,
// the ReLU's gradient written to dz: dx, or BatchNormAddReLUBackward's dr)
// of channels c0…c0+7.
void mochi_bnb_backward(mochi_bnb s, const float *x, const float *y, const float *dy, float *dz, float *dx,
	const float *gamma, const float *mean, const float *inv_std, float *dgamma, float *dbeta, int relu);
