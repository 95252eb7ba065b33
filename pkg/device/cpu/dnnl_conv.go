//go:build !purego

package cpu

// The oneDNN library (Debian's libdnnl-dev, oneDNN 2.x) runs the
// convolutions unless ConvBLAS is chosen. Its CPU runtime is OpenMP; every
// call below first sets the calling thread's OpenMP team size to 1, so
// oneDNN never forks a team: the backend's own workers run one part of the
// batch each, and no OpenMP worker threads exist to spin while Go's
// workers run the other kernels (dnnl_test.go checks the idle CPU time
// under OMP_WAIT_POLICY=active, where any team would spin without end).

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ldnnl -lgomp
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

enum { MOCHI_FWD = 0, MOCHI_BWD_DATA = 1, MOCHI_BWD_WEIGHTS = 2 };

// mochi_conv is one convolution primitive for one shape, with the reorders
// between the caller's plain buffers (NCHW activations, OIHW filters) and
// the layouts the primitive chose. Its three operands are, in the order
// mochi_conv_run takes them: forward (src, weights, dst), backward data
// (diff_dst, weights, diff_src), backward weights (src, diff_dst,
// diff_weights); the last is the output. The operands' blocked copies and
// the scratchpad live only during a run, in an arena the caller passes
// (one per part, shared by all its primitives): need bytes at offsets off.
typedef struct {
	dnnl_stream_t stream;
	dnnl_primitive_t conv;
	int arg[3];                  // DNNL_ARG_* of each operand
	dnnl_memory_t user[3];       // plain layout; handle set during a run only
	dnnl_memory_t prim[3];       // the primitive's layout (user[i] when equal)
	dnnl_primitive_t reorder[3]; // user ↔ prim; NULL when the layouts agree
	dnnl_memory_t scratch;       // scratchpad of the primitive and reorders
	size_t off[4];               // arena offsets of prim[0..2] and scratch
	size_t need;                 // arena bytes
	char *impl;                  // oneDNN's implementation name
} mochi_conv;

// mochi_take reserves size bytes of the arena, 64-byte aligned.
static size_t mochi_take(mochi_conv *m, size_t size) {
	size_t off = m->need;
	m->need += (size + 63) & ~(size_t)63;
	return off;
}

static void mochi_conv_destroy(mochi_conv *m) {
	if (!m) return;
	for (int i = 0; i < 3; i++) {
		if (m->reorder[i]) dnnl_primitive_destroy(m->reorder[i]);
		if (m->prim[i] && m->prim[i] != m->user[i]) dnnl_memory_destroy(m->prim[i]);
		if (m->user[i]) dnnl_memory_destroy(m->user[i]);
	}
	if (m->scratch) dnnl_memory_destroy(m->scratch);
	if (m->conv) dnnl_primitive_destroy(m->conv);
	if (m->stream) dnnl_stream_destroy(m->stream);
	free(m->impl);
	free(m);
}

#define MOCHI_TRY(call) do { st = (call); if (st != dnnl_success) goto fail; } while (0)

// mochi_user_attr is an attribute with a caller-managed scratchpad, so
// that executing a primitive allocates nothing.
static dnnl_status_t mochi_user_attr(dnnl_primitive_attr_t *attr) {
	dnnl_status_t st = dnnl_primitive_attr_create(attr);
	if (st != dnnl_success) return st;
	return dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
}

// mochi_act_tag is the layout of an activation with channel block b:
// NCHW for 0, nChw8c or nChw16c (oneDNN's aBcd8b, aBcd16b); the Go side
// passes no other block.
static dnnl_format_tag_t mochi_act_tag(long b) {
	switch (b) {
	case 8: return dnnl_aBcd8b;
	case 16: return dnnl_aBcd16b;
	}
	return dnnl_nchw;
}

// mochi_act_block is the channel block of md's layout: 8 or 16 where it is
// nChw8c or nChw16c, else 0.
static long mochi_act_block(const dnnl_memory_desc_t *md) {
	long blocks[] = {8, 16};
	for (int i = 0; i < 2; i++) {
		dnnl_memory_desc_t b;
		if (dnnl_memory_desc_init_by_tag(&b, 4, md->dims, dnnl_f32, mochi_act_tag(blocks[i])) == dnnl_success &&
		    dnnl_memory_desc_equal(&b, md)) {
			return blocks[i];
		}
	}
	return 0;
}

// mochi_conv_descs sets the descriptors of the shape d (n, c, h, w, k, r,
// s, stride, pad, oh, ow, then x's and y's channel blocks): the forward
// convolution of algorithm alg on layouts left to oneDNN, and the caller's
// layouts of x, w and y.
static dnnl_status_t mochi_conv_descs(const long *d, int alg, dnnl_convolution_desc_t *fwd,
	dnnl_memory_desc_t *x_user, dnnl_memory_desc_t *w_user, dnnl_memory_desc_t *y_user) {
	dnnl_status_t st;
	long n = d[0], c = d[1], h = d[2], w = d[3], k = d[4], r = d[5], s = d[6];
	long stride = d[7], pad = d[8], oh = d[9], ow = d[10];
	dnnl_dims_t xd = {n, c, h, w}, wd = {k, c, r, s}, yd = {n, k, oh, ow};
	dnnl_dims_t strides = {stride, stride}, pl = {pad, pad};
	// Right padding that makes oneDNN's output size PyTorch's; never
	// negative (the floor in the output size absorbs the difference).
	long prh = (oh - 1) * stride + r - h - pad, prw = (ow - 1) * stride + s - w - pad;
	dnnl_dims_t pr = {prh > 0 ? prh : 0, prw > 0 ? prw : 0};

	dnnl_memory_desc_t x_any, w_any, y_any;
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(&x_any, 4, xd, dnnl_f32, dnnl_format_tag_any));
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any));
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(&y_any, 4, yd, dnnl_f32, dnnl_format_tag_any));
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(x_user, 4, xd, dnnl_f32, mochi_act_tag(d[11])));
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(w_user, 4, wd, dnnl_f32, dnnl_oihw));
	MOCHI_TRY(dnnl_memory_desc_init_by_tag(y_user, 4, yd, dnnl_f32, mochi_act_tag(d[12])));
	MOCHI_TRY(dnnl_convolution_forward_desc_init(fwd, dnnl_forward_training, alg, &x_any, &w_any, NULL, &y_any, strides, pl, pr));
fail:
	return st;
}

// mochi_conv_blocks sets xb and yb to the channel blocks of the layouts
// oneDNN's forward kernel of algorithm alg chooses for x and y of the
// shape d (as in mochi_conv_descs, blocks ignored).
static dnnl_status_t mochi_conv_blocks(dnnl_engine_t eng, int alg, const long *d, long *xb, long *yb) {
	dnnl_status_t st;
	dnnl_convolution_desc_t fwd;
	dnnl_memory_desc_t x_user, w_user, y_user;
	dnnl_primitive_desc_t pd = NULL;
	MOCHI_TRY(mochi_conv_descs(d, alg, &fwd, &x_user, &w_user, &y_user));
	MOCHI_TRY(dnnl_primitive_desc_create(&pd, &fwd, NULL, eng, NULL));
	*xb = mochi_act_block(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
	*yb = mochi_act_block(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
fail:
	if (pd) dnnl_primitive_desc_destroy(pd);
	return st;
}

// mochi_conv_create builds the primitive of op for the shape d (as in
// mochi_conv_descs) with oneDNN's algorithm alg (direct, winograd or
// auto). A dnnl_unimplemented status means oneDNN has no kernel of that
// algorithm for the shape on this CPU.
static dnnl_status_t mochi_conv_create(mochi_conv **out, dnnl_engine_t eng, int op, int alg, const long *d) {
	omp_set_num_threads(1);
	dnnl_status_t st;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL, rpd = NULL;
	mochi_conv *m = calloc(1, sizeof *m);
	if (!m) return dnnl_out_of_memory;

	dnnl_convolution_desc_t fwd, desc;
	dnnl_memory_desc_t x_user, w_user, y_user;
	MOCHI_TRY(mochi_conv_descs(d, alg, &fwd, &x_user, &w_user, &y_user));
	MOCHI_TRY(mochi_user_attr(&attr));
	// The backwards' descriptors on the forward's layouts left to oneDNN.
	const dnnl_memory_desc_t *x_any = &fwd.src_desc, *w_any = &fwd.weights_desc, *y_any = &fwd.dst_desc;
	const dnnl_memory_desc_t *users[3];
	dnnl_query_t queries[3];
	switch (op) {
	case MOCHI_FWD:
		MOCHI_TRY(dnnl_primitive_desc_create(&pd, &fwd, attr, eng, NULL));
		m->arg[0] = DNNL_ARG_SRC; m->arg[1] = DNNL_ARG_WEIGHTS; m->arg[2] = DNNL_ARG_DST;
		users[0] = &x_user; users[1] = &w_user; users[2] = &y_user;
		queries[0] = dnnl_query_src_md; queries[1] = dnnl_query_weights_md; queries[2] = dnnl_query_dst_md;
		break;
	case MOCHI_BWD_DATA:
		MOCHI_TRY(dnnl_primitive_desc_create(&fwd_pd, &fwd, NULL, eng, NULL));
		MOCHI_TRY(dnnl_convolution_backward_data_desc_init(&desc, alg, x_any, w_any, y_any, fwd.strides, fwd.padding[0], fwd.padding[1]));
		MOCHI_TRY(dnnl_primitive_desc_create(&pd, &desc, attr, eng, fwd_pd));
		m->arg[0] = DNNL_ARG_DIFF_DST; m->arg[1] = DNNL_ARG_WEIGHTS; m->arg[2] = DNNL_ARG_DIFF_SRC;
		users[0] = &y_user; users[1] = &w_user; users[2] = &x_user;
		queries[0] = dnnl_query_diff_dst_md; queries[1] = dnnl_query_weights_md; queries[2] = dnnl_query_diff_src_md;
		break;
	default:
		MOCHI_TRY(dnnl_primitive_desc_create(&fwd_pd, &fwd, NULL, eng, NULL));
		MOCHI_TRY(dnnl_convolution_backward_weights_desc_init(&desc, alg, x_any, w_any, NULL, y_any, fwd.strides, fwd.padding[0], fwd.padding[1]));
		MOCHI_TRY(dnnl_primitive_desc_create(&pd, &desc, attr, eng, fwd_pd));
		m->arg[0] = DNNL_ARG_SRC; m->arg[1] = DNNL_ARG_DIFF_DST; m->arg[2] = DNNL_ARG_DIFF_WEIGHTS;
		users[0] = &x_user; users[1] = &y_user; users[2] = &w_user;
		queries[0] = dnnl_query_src_md; queries[1] = dnnl_query_diff_dst_md; queries[2] = dnnl_query_diff_weights_md;
	}

	const char *impl = NULL;
	MOCHI_TRY(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
	m->impl = strdup(impl ? impl : "?");
	size_t scratch = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
	const dnnl_memory_desc_t *scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	MOCHI_TRY(dnnl_primitive_create(&m->conv, pd));
	MOCHI_TRY(dnnl_stream_create(&m->stream, eng, dnnl_stream_default_flags));

	// Reorders: inputs user → prim, the output prim → user.
	dnnl_memory_desc_t rscratch_md;
	int rscratch = 0;
	for (int i = 0; i < 3; i++) {
		const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, queries[i], 0);
		MOCHI_TRY(dnnl_memory_create(&m->user[i], users[i], eng, DNNL_MEMORY_NONE));
		if (dnnl_memory_desc_equal(want, users[i])) {
			m->prim[i] = m->user[i];
			continue;
		}
		MOCHI_TRY(dnnl_memory_create(&m->prim[i], want, eng, DNNL_MEMORY_NONE));
		m->off[i] = mochi_take(m, dnnl_memory_desc_get_size(want));
		if (i < 2) {
			MOCHI_TRY(dnnl_reorder_primitive_desc_create(&rpd, users[i], eng, want, eng, attr));
		} else {
			MOCHI_TRY(dnnl_reorder_primitive_desc_create(&rpd, want, eng, users[i], eng, attr));
		}
		const dnnl_memory_desc_t *rs = dnnl_primitive_desc_query_md(rpd, dnnl_query_scratchpad_md, 0);
		if (dnnl_memory_desc_get_size(rs) > scratch) {
			scratch = dnnl_memory_desc_get_size(rs);
			rscratch_md = *rs;
			rscratch = 1;
		}
		MOCHI_TRY(dnnl_primitive_create(&m->reorder[i], rpd));
		dnnl_primitive_desc_destroy(rpd);
		rpd = NULL;
	}
	if (scratch > 0) {
		MOCHI_TRY(dnnl_memory_create(&m->scratch, rscratch ? &rscratch_md : scratch_md, eng, DNNL_MEMORY_NONE));
		m->off[3] = mochi_take(m, scratch);
	}
	dnnl_primitive_desc_destroy(pd);
	if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
	dnnl_primitive_attr_destroy(attr);
	*out = m;
	return dnnl_success;
fail:
	if (rpd) dnnl_primitive_desc_destroy(rpd);
	if (pd) dnnl_primitive_desc_destroy(pd);
	if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
	if (attr) dnnl_primitive_attr_destroy(attr);
	mochi_conv_destroy(m);
	return st;
}

static dnnl_status_t mochi_exec(mochi_conv *m, dnnl_primitive_t p, int n, dnnl_exec_arg_t *args) {
	if (m->scratch) {
		args[n].arg = DNNL_ARG_SCRATCHPAD;
		args[n].memory = m->scratch;
		n++;
	}
	return dnnl_primitive_execute(p, m->stream, n, args);
}

// mochi_conv_run runs the convolution on the caller's buffers a, b (inputs)
// and out, in the operand order of mochi_conv, on the calling thread alone,
// with arena (at least m->need bytes) for the blocked copies and the
// scratchpad. The buffers are Go memory: their handles are cleared before
// returning so that C keeps no pointer to them.
static dnnl_status_t mochi_conv_run(mochi_conv *m, char *arena, void *a, void *b, void *out) {
	omp_set_num_threads(1);
	dnnl_status_t st = dnnl_success;
	void *h[3] = {a, b, out};
	dnnl_exec_arg_t args[4];
	for (int i = 0; i < 3; i++) {
		MOCHI_TRY(dnnl_memory_set_data_handle(m->user[i], h[i]));
		if (m->prim[i] != m->user[i]) {
			MOCHI_TRY(dnnl_memory_set_data_handle(m->prim[i], arena + m->off[i]));
		}
	}
	if (m->scratch) {
		MOCHI_TRY(dnnl_memory_set_data_handle(m->scratch, arena + m->off[3]));
	}
	for (int i = 0; i < 2; i++) {
		if (!m->reorder[i]) continue;
		args[0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, m->user[i]};
		args[1] = (dnnl_exec_arg_t){DNNL_ARG_TO, m->prim[i]};
		MOCHI_TRY(mochi_exec(m, m->reorder[i], 2, args));
	}
	for (int i = 0; i < 3; i++) {
		args[i] = (dnnl_exec_arg_t){m->arg[i], m->prim[i]};
	}
	MOCHI_TRY(mochi_exec(m, m->conv, 3, args));
	if (m->reorder[2]) {
		args[0] = (dnnl_exec_arg_t){DNNL_ARG_FROM, m->prim[2]};
		args[1] = (dnnl_exec_arg_t){DNNL_ARG_TO, m->user[2]};
		MOCHI_TRY(mochi_exec(m, m->reorder[2], 2, args));
	}
	st = dnnl_stream_wait(m->stream);
fail:
	for (int i = 0; i < 3; i++) {
		dnnl_memory_set_data_handle(m->user[i], DNNL_MEMORY_NONE);
	}
	return st;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// haveOneDNN reports that this build runs convolutions on oneDNN.
const haveOneDNN = true

// OneDNN names the oneDNN library this binary uses: its version and CPU
// runtime, and its commit where the build recorded one.
func OneDNN() string {
	v := C.dnnl_version()
	s := fmt.Sprintf("oneDNN %d.%d.%d", int(v.major), int(v.minor), int(v.patch))
	if h := C.GoString(v.hash); h != "" && h != "N/A" {
		s += " " + h
	}
	if v.cpu_runtime == C.DNNL_RUNTIME_OMP {
		return s + ", OpenMP"
	}
	return fmt.Sprintf("%s, CPU runtime %d", s, int(v.cpu_runtime))
}

// dnnlKey names one cached primitive: the kernel, the shape of its part of
// the batch (N is the part's images), the mode and the part (each part
// runs concurrently with the others, so each has its own primitive,
// buffers and stream).
type dnnlKey struct {
	op   convOp
	s    device.ConvShape
	mode ConvMode
	part int
}

// dnnlConvs holds the oneDNN engine and the primitives created so far,
// reused by every later call of the same shape: after the first step a
// convolution allocates nothing. The blocked copies of the operands and the
// scratchpads live during a call only, in one C arena per part that fits
// the largest need of its primitives, so they cost the memory of one
// convolution, not of every shape.
type dnnlConvs struct {
	engine C.dnnl_engine_t
	prims  map[dnnlKey]dnnlPrim
	arenas []dnnlArena // per part
	task   dnnlTask
	wino   winoState // mochi's Winograd (winograd.go)
}

// dnnlArena is C memory of size bytes, 64-byte aligned.
type dnnlArena struct {
	ptr  *C.char
	size C.size_t
}

// dnnlPrim is one cached primitive and oneDNN's name for the kernel it
// runs ("jit_wino_4x3:avx512_core", "jit:avx2"; tests read it to see what
// ran).
type dnnlPrim struct {
	conv *C.mochi_conv
	impl string
}

// dnnlState is the backend's convolution setting and, once oneDNN has run,
// its primitives.
type dnnlState struct {
	mode  ConvMode
	convs *dnnlConvs
	// winoAnyChannels lets mochi's Winograd run with any channel count
	// (tests of odd sizes), not only from winoMinChannels.
	winoAnyChannels bool
}

// free destroys the primitives and the engine.
func (c *dnnlConvs) free() {
	for _, p := range c.prims {
		C.mochi_conv_destroy(p.conv)
	}
	for _, a := range c.arenas {
		C.free(unsafe.Pointer(a.ptr))
	}
	C.dnnl_engine_destroy(c.engine)
}

// algorithm is the oneDNN algorithm of a mode's oneDNN kernels.
func (m ConvMode) algorithm() C.dnnl_alg_kind_t {
	switch m {
	case ConvWinograd:
		return C.dnnl_convolution_winograd
	}
	return C.dnnl_convolution_direct // direct and auto
}

// dnnlStatus formats a oneDNN status.
func dnnlStatus(st C.dnnl_status_t) string { return C.GoString(C.dnnl_status2str(st)) }

// kernelOf picks the kernel mode m runs convolution s on, as try (called
// with a oneDNN algorithm) finds oneDNN's kernels: mochi reports mochi's
// Winograd (always in auto for the shapes mochiWinograd takes, and in
// winograd where oneDNN has no Winograd kernel for the shape); else st is
// try's status for oneDNN's algorithm of m, or for direct where winograd
// finds none. primitive and ConvBlocks both decide with it, so the layouts
// ConvBlocks names are those of the kernel that runs.
func (b *Backend) kernelOf(m ConvMode, s device.ConvShape, try func(alg C.int) C.dnnl_status_t) (mochi bool, st C.dnnl_status_t) {
	if m == ConvAuto && b.mochiWinograd(s) {
		return true, C.dnnl_success
	}
	alg := m.algorithm()
	st = try(C.int(alg))
	if st == C.dnnl_unimplemented && alg == C.dnnl_convolution_winograd {
		if b.mochiWinograd(s) {
			return true, C.dnnl_success
		}
		st = try(C.dnnl_convolution_direct)
	}
	return false, st
}

// primitive returns the cached primitive of key, creating it on first use,
// or nil where mochi's Winograd runs the shape: always in auto mode (for
// the shapes mochiWinograd takes), and in winograd mode where oneDNN has no
// Winograd kernel for it (any filter but 3×3 stride 1, channels that are
// not a multiple of its vector width, a CPU without AVX-512). Winograd mode
// falls back to direct for the other shapes.
func (b *Backend) primitive(key dnnlKey) (*C.mochi_conv, error) {
	c := b.dnnl.convs
	if p, ok := c.prims[key]; ok {
		return p.conv, nil
	}
	s := key.s
	dims := convDims(s)
	var p *C.mochi_conv
	mochi, st := b.kernelOf(key.mode, s, func(alg C.int) C.dnnl_status_t {
		return C.mochi_conv_create(&p, c.engine, C.int(key.op), alg, &dims[0])
	})
	if mochi {
		c.prims[key] = dnnlPrim{impl: winoImpl}
		return nil, nil
	}
	if st != C.dnnl_success {
		return nil, fmt.Errorf("oneDNN has no %s convolution primitive for %+v (%s): use cpu.conv blas", opName(key.op), s, dnnlStatus(st))
	}
	c.prims[key] = dnnlPrim{conv: p, impl: C.GoString(p.impl)}
	return p, nil
}

// convDims is the shape as mochi_conv_descs takes it.
func convDims(s device.ConvShape) [13]C.long {
	return [13]C.long{C.long(s.N), C.long(s.C), C.long(s.H), C.long(s.W), C.long(s.K), C.long(s.R), C.long(s.S),
		C.long(s.Stride), C.long(s.Pad), C.long(s.OutH()), C.long(s.OutW()), C.long(s.XBlock), C.long(s.YBlock)}
}

// ConvBlocks returns the channel blocks of the layouts oneDNN's forward
// kernel for s keeps x and y in (nChw8c on AVX2, nChw16c on AVX-512 where
// the channels allow), 0 where it takes NCHW, and 0, 0 for the
// convolutions oneDNN does not run: in mode blas and on mochi's Winograd.
// It asks for the kernel primitive would create: in mode winograd
// oneDNN's Winograd where the CPU has one, else mochi's or direct. The
// backward kernels of the same shape use the forward's layouts (else
// oneDNN reorders, which is only slower).
func (b *Backend) ConvBlocks(s device.ConvShape) (x, y int) {
	s.XBlock, s.YBlock = 0, 0
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.dnnl.mode
	if m == "" || m == ConvBLAS || s.N == 0 {
		return 0, 0
	}
	c := b.dnnlEngine()
	if c == nil {
		return 0, 0
	}
	var xb, yb C.long
	dims := convDims(s)
	mochi, st := b.kernelOf(m, s, func(alg C.int) C.dnnl_status_t {
		return C.mochi_conv_blocks(c.engine, alg, &dims[0], &xb, &yb)
	})
	if mochi || st != C.dnnl_success {
		return 0, 0 // NCHW for mochi's Winograd; a failure the convolution itself will report
	}
	return int(xb), int(yb)
}

// dnnlEngine returns the oneDNN state, creating the engine on first use,
// or nil after recording the error. Called with b.mu held.
func (b *Backend) dnnlEngine() *dnnlConvs {
	if b.dnnl.convs == nil {
		c := &dnnlConvs{prims: map[dnnlKey]dnnlPrim{}}
		if st := C.dnnl_engine_create(&c.engine, C.dnnl_cpu, 0); st != C.dnnl_success {
			b.fail("oneDNN: no CPU engine (%s): use cpu.conv blas", dnnlStatus(st))
			return nil
		}
		b.dnnl.convs = c
		runtime.AddCleanup(b, func(c *dnnlConvs) { c.free() }, c)
	}
	return b.dnnl.convs
}

// opName names a convolution kernel in messages.
func opName(op convOp) string {
	switch op {
	case convForward:
		return "forward"
	case convBackwardData:
		return "backward-data"
	}
	return "backward-weights"
}

// dnnlTask runs one part of the batch on its primitive: x and y are the
// operands as in convTask (x is dx for the backward data, y is dy for the
// backwards), dw the filter gradient of part 0.
type dnnlTask struct {
	op     convOp
	s      device.ConvShape
	x, w   []float32
	y, dw  []float32
	prims  []*C.mochi_conv // per part
	arenas []*C.char       // per part
	status []C.dnnl_status_t
	ws     *workspace
}

func (t *dnnlTask) run(part, lo, hi int) {
	s := t.s
	chw, kohw := s.C*s.H*s.W, s.K*s.OutH()*s.OutW()
	x, y := unsafe.Pointer(&t.x[lo*chw]), unsafe.Pointer(&t.y[lo*kohw])
	p, a := t.prims[part], t.arenas[part]
	switch t.op {
	case convForward:
		t.status[part] = C.mochi_conv_run(p, a, x, unsafe.Pointer(&t.w[0]), y)
	case convBackwardData:
		t.status[part] = C.mochi_conv_run(p, a, y, unsafe.Pointer(&t.w[0]), x)
	default:
		dw := t.dw
		if part > 0 {
			dw = t.ws.dw[part]
		}
		t.status[part] = C.mochi_conv_run(p, a, x, y, unsafe.Pointer(&dw[0]))
	}
}

// dnnlConv runs a checked convolution on oneDNN and reports true, or
// reports false when the mode is ConvBLAS (or the batch is empty) and
// im2col + BLAS should run it. x is dx for the backward data and y is dy
// for both backwards, as in conv. Called with b.mu held.
func (b *Backend) dnnlConv(op convOp, s device.ConvShape, x, w, y device.Buffer) bool {
	if b.dnnl.mode == ConvBLAS || s.N == 0 {
		return false
	}
	c := b.dnnlEngine()
	if c == nil {
		return true
	}
	t := &c.task
	parts := b.workers.parts(s.N, 1)
	t.prims, t.arenas, t.status = grow(t.prims, parts), grow(t.arenas, parts), grow(t.status, parts)
	if len(c.arenas) < parts {
		c.arenas = append(c.arenas, make([]dnnlArena, parts-len(c.arenas))...)
	}
	for p := range parts {
		part := s
		part.N = (p+1)*s.N/parts - p*s.N/parts // the split of workers.parallel
		prim, err := b.primitive(dnnlKey{op: op, s: part, mode: b.dnnl.mode, part: p})
		if err != nil {
			b.fail("%s: %v", opName(op), err)
			return true
		}
		if prim == nil && blocked(s) {
			b.fail("%s %+v: mochi's Winograd takes NCHW activations, not channel blocks; compile the plan after SetConvMode (it asks ConvBlocks)", opName(op), s)
			return true
		}
		if prim == nil { // part 0's: mochi's Winograd runs the whole batch
			b.winograd(op, s, Float32s(x), Float32s(w), Float32s(y))
			return true
		}
		t.prims[p] = prim
		if a := &c.arenas[p]; a.size < prim.need {
			C.free(unsafe.Pointer(a.ptr))
			a.ptr = (*C.char)(C.aligned_alloc(64, prim.need))
			if a.ptr == nil {
				a.size = 0
				b.fail("%s: no memory for oneDNN's %d-byte workspace", opName(op), int(prim.need))
				return true
			}
			a.size = prim.need
		}
		t.arenas[p] = c.arenas[p].ptr
		if op == convBackwardFilter && p > 0 {
			b.ws.dw[p] = grow(b.ws.dw[p], s.K*s.C*s.R*s.S)
		}
	}
	t.op, t.s, t.ws = op, s, &b.ws
	t.x, t.w, t.y = Float32s(x), Float32s(w), Float32s(y)
	if op == convBackwardFilter {
		t.dw = t.w
	}
	b.workers.parallel(s.N, 1, t)
	dw := t.dw
	// Keep the reusable slices; drop the caller's buffers and the pointer
	// into the backend (a cleanup's argument must not reach the backend).
	*t = dnnlTask{prims: t.prims, arenas: t.arenas, status: t.status}
	for p, st := range t.status {
		if st != C.dnnl_success {
			b.fail("oneDNN %s convolution %+v, part %d: %s", opName(op), s, p, dnnlStatus(st))
			return true
		}
	}
	if op == convBackwardFilter { // dw = Σ_parts, parts in order
		n := s.K * s.C * s.R * s.S
		for p := 1; p < parts; p++ {
			addVector(dw[:n], b.ws.dw[p][:n])
		}
	}
	return true
}
