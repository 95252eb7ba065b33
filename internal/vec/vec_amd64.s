//go:build amd64 && !purego

#include "textflag.h"

// The loops of vec_amd64.go (see doc.go). Lengths are multiples of 8
// (maps) or 4 (sums), at least one group.

// func reluAVX2(x, y []float32)
// y = max(x, 0) as Go's max: x where x > 0 or x is NaN, else +0.
TEXT ·reluAVX2(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DI
	SHRQ $3, CX
	VXORPS Y0, Y0, Y0
relu_loop:
	VMOVUPS (SI), Y1
	VCMPPS $0x1e, Y0, Y1, Y2 // x > 0 (ordered)
	VCMPPS $0x03, Y1, Y1, Y3 // x is NaN
	VORPS Y3, Y2, Y2
	VANDPS Y1, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ relu_loop
	VZEROUPPER
	RET

// func reluBackwardAVX2(x, y, z []float32)
// z = y where x's bits as an int32 are ≥ 1 (positiveMask), else +0.
TEXT ·reluBackwardAVX2(SB), NOSPLIT, $0-72
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DX
	MOVQ z_base+48(FP), DI
	SHRQ $3, CX
	VPXOR Y0, Y0, Y0
relub_loop:
	VMOVDQU (SI), Y1
	VPCMPGTD Y0, Y1, Y2 // int32(x) > 0
	VPAND (DX), Y2, Y2
	VMOVDQU Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ relub_loop
	VZEROUPPER
	RET

// func addAVX2(x, y, z []float32)
// z = x + y.
TEXT ·addAVX2(SB), NOSPLIT, $0-72
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DX
	MOVQ z_base+48(FP), DI
	SHRQ $3, CX
add_loop:
	VMOVUPS (SI), Y1
	VADDPS (DX), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ add_loop
	VZEROUPPER
	RET

// func affineAVX2(x, y []float32, a, b float32)
// y = a·x + b, rounded after the product and after the sum.
TEXT ·affineAVX2(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DI
	VBROADCASTSS a+48(FP), Y4
	VBROADCASTSS b+52(FP), Y5
	SHRQ $3, CX
affine_loop:
	VMULPS (SI), Y4, Y1
	VADDPS Y5, Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ affine_loop
	VZEROUPPER
	RET

// func bnBackwardAVX2(x, dy, dx []float32, k, c2, mu, inv, c3 float32)
// dx = k·((dy − c2) − ((x − mu)·inv)·c3).
TEXT ·bnBackwardAVX2(SB), NOSPLIT, $0-92
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ dy_base+24(FP), DX
	MOVQ dx_base+48(FP), DI
	VBROADCASTSS k+72(FP), Y4
	VBROADCASTSS c2+76(FP), Y5
	VBROADCASTSS mu+80(FP), Y6
	VBROADCASTSS inv+84(FP), Y7
	VBROADCASTSS c3+88(FP), Y8
	SHRQ $3, CX
bnb_loop:
	VMOVUPS (DX), Y1
	VSUBPS Y5, Y1, Y1 // dy − c2
	VMOVUPS (SI), Y2
	VSUBPS Y6, Y2, Y2 // x − mu
	VMULPS Y7, Y2, Y2 // ·inv
	VMULPS Y8, Y2, Y2 // ·c3
	VSUBPS Y2, Y1, Y1
	VMULPS Y4, Y1, Y1 // k·
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ bnb_loop
	VZEROUPPER
	RET

// func sumLanesAVX2(x []float32, s *[4]float64)
// s[j] += x[i] for i ≡ j (mod 4), in the order of i.
TEXT ·sumLanesAVX2(SB), NOSPLIT, $0-32
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ s+24(FP), DI
	VMOVUPD (DI), Y0
	SHRQ $2, CX
sum_loop:
	VCVTPS2PD (SI), Y1
	VADDPD Y1, Y0, Y0
	ADDQ $16, SI
	DECQ CX
	JNZ sum_loop
	VMOVUPD Y0, (DI)
	VZEROUPPER
	RET

// func sqDevLanesAVX2(x []float32, mu float64, s *[4]float64)
// s[j] += (x[i] − mu)² for i ≡ j (mod 4), in the order of i.
TEXT ·sqDevLanesAVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSD mu+24(FP), Y7
	MOVQ s+32(FP), DI
	VMOVUPD (DI), Y0
	SHRQ $2, CX
sq_loop:
	VCVTPS2PD (SI), Y1
	VSUBPD Y7, Y1, Y1
	VMULPD Y1, Y1, Y1
	VADDPD Y1, Y0, Y0
	ADDQ $16, SI
	DECQ CX
	JNZ sq_loop
	VMOVUPD Y0, (DI)
	VZEROUPPER
	RET

// func sumsDyXhatAVX2(x, dy []float32, mu, inv float32, s *[4]float64)
// s[i%2] += dy[i] and s[2+i%2] += dy[i]·((x[i] − mu)·inv), in the order of
// i, the product in float64 of the float32 x̂.
TEXT ·sumsDyXhatAVX2(SB), NOSPLIT, $0-64
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ dy_base+24(FP), DX
	VBROADCASTSS mu+48(FP), X6
	VBROADCASTSS inv+52(FP), X7
	MOVQ s+56(FP), DI
	VMOVUPD (DI), X0   // Σ dy, even and odd i
	VMOVUPD 16(DI), X3 // Σ dy·x̂, even and odd i
	SHRQ $2, CX
dyx_loop:
	VMOVUPS (SI), X2
	VSUBPS X6, X2, X2
	VMULPS X7, X2, X2  // x̂ in float32
	VCVTPS2PD X2, Y2
	VCVTPS2PD (DX), Y1 // dy
	VMULPD Y2, Y1, Y2  // dy·x̂
	VADDPD X1, X0, X0
	VEXTRACTF128 $1, Y1, X4
	VADDPD X4, X0, X0
	VADDPD X2, X3, X3
	VEXTRACTF128 $1, Y2, X5
	VADDPD X5, X3, X3
	ADDQ $16, SI
	ADDQ $16, DX
	DECQ CX
	JNZ dyx_loop
	VMOVUPD X0, (DI)
	VMOVUPD X3, 16(DI)
	VZEROUPPER
	RET
