package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/devicetest"
)

// arena stands in for device memory: an address is a byte offset into it.
type arena []float32

// put copies v into the arena and returns its address.
func (a *arena) put(v []float32) uintptr {
	p := uintptr(len(*a) * elemSize)
	*a = append(*a, v...)
	return p
}

func (a arena) at(p uintptr, n int) []float32 { return a[int(p)/elemSize:][:n] }

// runColMajor executes the column-major call cuBLAS receives for g, as
// cublasSgemmStridedBatched defines it (element (r, c) of a column-major
// matrix with leading dimension ld is at r + c·ld), in float64.
func runColMajor(mem arena, g gemmBatch) {
	c := g.colMajor()
	get := func(base uintptr, ld, r, col int) float64 { return float64(mem[int(base)/elemSize+r+col*ld]) }
	for i := 0; i < c.count; i++ {
		pa, pb, pc := off(c.a, i*c.strideA), off(c.b, i*c.strideB), off(c.c, i*c.strideC)
		for r := 0; r < c.m; r++ {
			for col := 0; col < c.n; col++ {
				s := 0.0
				for l := 0; l < c.k; l++ {
					av, bv := 0.0, 0.0
					if c.transA {
						av = get(pa, c.lda, l, r)
					} else {
						av = get(pa, c.lda, r, l)
					}
					if c.transB {
						bv = get(pb, c.ldb, col, l)
					} else {
						bv = get(pb, c.ldb, l, col)
					}
					s += av * bv
				}
				k := int(pc)/elemSize + r + col*c.ldc
				mem[k] = float32(float64(c.alpha)*s + float64(c.beta)*float64(mem[k]))
			}
		}
	}
}

// im2colRef is col (C·R·S × cnt·P) of cnt images x (cnt×C×H×W).
func im2colRef(s device.ConvShape, cnt int, x []float32) []float32 {
	oh, ow := s.OutH(), s.OutW()
	p := oh * ow
	col := make([]float32, s.C*s.R*s.S*cnt*p)
	for c := 0; c < s.C; c++ {
		for r := 0; r < s.R; r++ {
			for q := 0; q < s.S; q++ {
				for j := 0; j < cnt; j++ {
					for i := 0; i < p; i++ {
						h, w := i/ow*s.Stride-s.Pad+r, i%ow*s.Stride-s.Pad+q
						if h >= 0 && h < s.H && w >= 0 && w < s.W {
							col[((c*s.R+r)*s.S+q)*cnt*p+j*p+i] = x[((j*s.C+c)*s.H+h)*s.W+w]
						}
					}
				}
			}
		}
	}
	return col
}

// col2imPort is col2im_f32's loop (kernels/conv.cu) in Go: its bounds on
// the output pixels that cover (h, w) are what this checks.
func col2imPort(s device.ConvShape, cnt int, dcol []float32) []float32 {
	oh, ow := s.OutH(), s.OutW()
	np := cnt * oh * ow
	dx := make([]float32, cnt*s.C*s.H*s.W)
	for t := range dx {
		w, h, c, j := t%s.W, t/s.W%s.H, t/(s.W*s.H)%s.C, t/(s.W*s.H*s.C)
		hp, wp := h+s.Pad, w+s.Pad
		ohLo, owLo := 0, 0
		if hp-s.R+1 > 0 {
			ohLo = (hp - s.R + s.Stride) / s.Stride
		}
		if wp-s.S+1 > 0 {
			owLo = (wp - s.S + s.Stride) / s.Stride
		}
		ohHi, owHi := min(hp/s.Stride, oh-1), min(wp/s.Stride, ow-1)
		g := float32(0)
		for y := ohLo; y <= ohHi; y++ {
			for x := owLo; x <= owHi; x++ {
				r, q := hp-y*s.Stride, wp-x*s.Stride
				g += dcol[((c*s.R+r)*s.S+q)*np+j*oh*ow+y*ow+x]
			}
		}
		dx[t] = g
	}
	return dx
}

// convRef returns y, dx and dw of a direct convolution in float64.
func convRef(s device.ConvShape, x, w, dy []float32) (y, dx, dw []float64) {
	y = make([]float64, s.N*s.K*s.OutH()*s.OutW())
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	devicetest.ConvTaps(s, func(yi, xi, wi int) {
		y[yi] += float64(x[xi]) * float64(w[wi])
		dx[xi] += float64(dy[yi]) * float64(w[wi])
		dw[wi] += float64(dy[yi]) * float64(x[xi])
	})
	return y, dx, dw
}

func randFloats(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func checkClose(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-4*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestConvGEMMs runs the convolution's batched GEMM descriptors (as cuBLAS
// receives them), im2col, col2im's loop bounds and the split-K sum on the
// host and compares every pass with a direct convolution.
func TestConvGEMMs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []device.ConvShape{
		{N: 3, C: 2, H: 5, W: 4, K: 3, R: 3, S: 2, Stride: 2, Pad: 1},
		{N: 2, C: 3, H: 6, W: 6, K: 4, R: 3, S: 3, Stride: 1, Pad: 1},
		{N: 2, C: 2, H: 7, W: 5, K: 3, R: 1, S: 1, Stride: 2, Pad: 0},
		{N: 3, C: 4, H: 3, W: 5, K: 2, R: 1, S: 1, Stride: 1, Pad: 0},
		{N: 2, C: 1, H: 9, W: 9, K: 2, R: 7, S: 7, Stride: 2, Pad: 3},
	} {
		p, crs := s.OutH()*s.OutW(), s.C*s.R*s.S
		x, w, dy := randFloats(rng, s.N*s.C*s.H*s.W), randFloats(rng, s.K*crs), randFloats(rng, s.N*s.K*p)
		wantY, wantDX, wantDW := convRef(s, x, w, dy)

		var mem arena
		pw, pdy := mem.put(w), mem.put(dy)
		col := im2colRef(s, s.N, x)
		pcol := mem.put(col)
		py, pdcol := mem.put(make([]float32, s.N*s.K*p)), mem.put(make([]float32, len(col)))
		runColMajor(mem, chunkForward(s, s.N, pw, pcol, py))
		checkClose(t, "chunkForward y", mem.at(py, s.N*s.K*p), wantY)
		runColMajor(mem, chunkBackwardData(s, s.N, pw, pdy, pdcol))
		checkClose(t, "chunkBackwardData + col2im dx", col2imPort(s, s.N, mem.at(pdcol, len(col))), wantDX)

		// dyT: dy reordered to K × N·P, as nkp_to_kp_f32 writes it.
		dyT := make([]float32, len(dy))
		for k := 0; k < s.K; k++ {
			for j := 0; j < s.N; j++ {
				copy(dyT[(k*s.N+j)*p:][:p], dy[(j*s.K+k)*p:][:p])
			}
		}
		pdyT := mem.put(dyT)
		inner := s.N * p
		for _, slices := range []int{1, 2, 3, 5} {
			slices = min(slices, inner)
			part := mem.put(make([]float32, slices*s.K*crs))
			all, rest, hasRest := filterSlices(s, inner, slices, pdyT, pcol, part)
			runColMajor(mem, all)
			if hasRest {
				runColMajor(mem, rest)
			}
			dw := make([]float32, s.K*crs) // sum_slices_f32
			for i := range dw {
				for sl := 0; sl < slices; sl++ {
					dw[i] += mem.at(part, slices*s.K*crs)[sl*s.K*crs+i]
				}
			}
			checkClose(t, "filterSlices dw", dw, wantDW)
		}

		// the unbatched path (P < batchedMinP): one GEMM each on the whole
		// chunk, with dy reordered to K × N·P
		ykp := mem.put(make([]float32, s.K*inner))
		runColMajor(mem, singleGemm(false, false, s.K, inner, crs, 1, pw, pcol, 0, ykp))
		ynkp := make([]float32, s.N*s.K*p) // kp_to_nkp_f32
		for k := 0; k < s.K; k++ {
			for j := 0; j < s.N; j++ {
				copy(ynkp[(j*s.K+k)*p:][:p], mem.at(ykp, s.K*inner)[(k*s.N+j)*p:][:p])
			}
		}
		checkClose(t, "singleGemm forward y", ynkp, wantY)
		dcol1 := mem.put(make([]float32, len(col)))
		runColMajor(mem, singleGemm(true, false, crs, inner, s.K, 1, pw, pdyT, 0, dcol1))
		checkClose(t, "singleGemm backward data + col2im dx", col2imPort(s, s.N, mem.at(dcol1, len(col))), wantDX)
		dw1 := mem.put(randFloats(rng, s.K*crs)) // beta 0 must ignore what is there
		runColMajor(mem, singleGemm(false, true, s.K, crs, inner, 1, pdyT, pcol, 0, dw1))
		checkClose(t, "singleGemm filter dw", mem.at(dw1, s.K*crs), wantDW)

		if pointwise(s) {
			px, py2, pdx := mem.put(x), mem.put(make([]float32, s.N*s.K*p)), mem.put(make([]float32, len(x)))
			runColMajor(mem, pointwiseForward(s, pw, px, py2))
			checkClose(t, "pointwiseForward y", mem.at(py2, s.N*s.K*p), wantY)
			runColMajor(mem, pointwiseBackwardData(s, pw, pdy, pdx))
			checkClose(t, "pointwiseBackwardData dx", mem.at(pdx, len(x)), wantDX)
		}
	}
}

func TestSplitK(t *testing.T) {
	for _, c := range []struct{ k, crs, inner, sms, want int }{
		{64, 576, 262144, 132, splitKMaxSlices}, // ResNet-18 stage 1: 5 tiles
		{256, 2304, 16384, 132, 8},              // 36 tiles
		{512, 4608, 4096, 132, 2},               // 144 tiles, 2 slices of 2048
		{2048, 4608, 1 << 20, 132, 1},           // 576 tiles already fill the GPU
		{64, 576, 1500, 132, 1},                 // too short to split
	} {
		if got := splitK(c.k, c.crs, c.inner, c.sms); got != c.want {
			t.Errorf("splitK(%d, %d, %d, %d) = %d, want %d", c.k, c.crs, c.inner, c.sms, got, c.want)
		}
	}
}

// TestSingleGemm checks the one-matrix descriptor against a row-major
// float64 product for every transposition, with alpha and beta.
func TestSingleGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const m, n, k = 5, 7, 3
	const alpha, beta = 0.75, -0.5
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		a, b, c := randFloats(rng, m*k), randFloats(rng, k*n), randFloats(rng, m*n)
		at := func(i, l int) float64 { // op(a)[i, l]
			if tr[0] {
				return float64(a[l*m+i])
			}
			return float64(a[i*k+l])
		}
		bt := func(l, j int) float64 { // op(b)[l, j]
			if tr[1] {
				return float64(b[j*k+l])
			}
			return float64(b[l*n+j])
		}
		want := make([]float64, m*n)
		for i := range m {
			for j := range n {
				var sum float64
				for l := range k {
					sum += at(i, l) * bt(l, j)
				}
				want[i*n+j] = alpha*sum + beta*float64(c[i*n+j])
			}
		}
		var mem arena
		pa, pb, pc := mem.put(a), mem.put(b), mem.put(c)
		runColMajor(mem, singleGemm(tr[0], tr[1], m, n, k, alpha, pa, pb, beta, pc))
		checkClose(t, fmt.Sprintf("singleGemm trans %v", tr), mem.at(pc, m*n), want)
	}
}
