package graph

import "math"

// Plain float64 references of every op, written as the definitions read
// (naive loops), independent of the backend's kernels.

func refConv(x, w []float64, n, c, h, wd, k, r, s, stride, pad int) []float64 {
	oh, ow := (h+2*pad-r)/stride+1, (wd+2*pad-s)/stride+1
	y := make([]float64, n*k*oh*ow)
	for b := 0; b < n; b++ {
		for o := 0; o < k; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var sum float64
					for ch := 0; ch < c; ch++ {
						for p := 0; p < r; p++ {
							for q := 0; q < s; q++ {
								hi, wj := i*stride-pad+p, j*stride-pad+q
								if hi < 0 || hi >= h || wj < 0 || wj >= wd {
									continue
								}
								sum += x[((b*c+ch)*h+hi)*wd+wj] * w[((o*c+ch)*r+p)*s+q]
							}
						}
					}
					y[((b*k+o)*oh+i)*ow+j] = sum
				}
			}
		}
	}
	return y
}

// refBNTrain returns y and the running statistics after one update from
// runMean, runVar.
func refBNTrain(x, gamma, beta, runMean, runVar []float64, n, c, hw, groups int, momentum, eps float64) (y, newMean, newVar []float64) {
	y = make([]float64, len(x))
	newMean, newVar = make([]float64, c), make([]float64, c)
	per := n / groups
	cnt := float64(per * hw)
	for ch := 0; ch < c; ch++ {
		var meanSum, varSum float64
		for g := 0; g < groups; g++ {
			var mu, v float64
			for b := g * per; b < (g+1)*per; b++ {
				for i := 0; i < hw; i++ {
					mu += x[(b*c+ch)*hw+i]
				}
			}
			mu /= cnt
			for b := g * per; b < (g+1)*per; b++ {
				for i := 0; i < hw; i++ {
					d := x[(b*c+ch)*hw+i] - mu
					v += d * d
				}
			}
			v /= cnt
			for b := g * per; b < (g+1)*per; b++ {
				for i := 0; i < hw; i++ {
					idx := (b*c+ch)*hw + i
					y[idx] = gamma[ch]*(x[idx]-mu)/math.Sqrt(v+eps) + beta[ch]
				}
			}
			meanSum += mu
			varSum += v * cnt / (cnt - 1)
		}
		newMean[ch] = (1-momentum)*runMean[ch] + momentum*meanSum/float64(groups)
		newVar[ch] = (1-momentum)*runVar[ch] + momentum*varSum/float64(groups)
	}
	return y, newMean, newVar
}

func refBNInfer(x, gamma, beta, runMean, runVar []float64, n, c, hw int, eps float64) []float64 {
	y := make([]float64, len(x))
	for i := range x {
		ch := (i / hw) % c
		y[i] = gamma[ch]*(x[i]-runMean[ch])/math.Sqrt(runVar[ch]+eps) + beta[ch]
	}
	return y
}

func refReLU(x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = math.Max(v, 0)
	}
	return y
}

func refMaxPool(x []float64, n, c, h, w, size, stride, pad int) []float64 {
	oh, ow := (h+2*pad-size)/stride+1, (w+2*pad-size)/stride+1
	y := make([]float64, n*c*oh*ow)
	for p := 0; p < n*c; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				m := math.Inf(-1)
				for a := 0; a < size; a++ {
					for b := 0; b < size; b++ {
						hi, wj := i*stride-pad+a, j*stride-pad+b
						if hi >= 0 && hi < h && wj >= 0 && wj < w {
							m = math.Max(m, x[(p*h+hi)*w+wj])
						}
					}
				}
				y[(p*oh+i)*ow+j] = m
			}
		}
	}
	return y
}

func refGAP(x []float64, n, c, hw int) []float64 {
	y := make([]float64, n*c)
	for p := range y {
		for i := 0; i < hw; i++ {
			y[p] += x[p*hw+i]
		}
		y[p] /= float64(hw)
	}
	return y
}

// refLinear is y = x·wᵀ + b, b nil for no bias.
func refLinear(x, w, b []float64, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			if b != nil {
				s = b[o]
			}
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func refL2Normalize(x []float64, rows, cols int) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		var ss float64
		for c := 0; c < cols; c++ {
			ss += x[r*cols+c] * x[r*cols+c]
		}
		norm := math.Max(math.Sqrt(ss), 1e-12)
		for c := 0; c < cols; c++ {
			y[r*cols+c] = x[r*cols+c] / norm
		}
	}
	return y
}

func refSoftmaxCE(logits []float64, labels []int32, rows, cols int, tau float64) float64 {
	var loss float64
	for r := 0; r < rows; r++ {
		m := math.Inf(-1)
		for c := 0; c < cols; c++ {
			m = math.Max(m, logits[r*cols+c]/tau)
		}
		var z float64
		for c := 0; c < cols; c++ {
			z += math.Exp(logits[r*cols+c]/tau - m)
		}
		loss -= logits[r*cols+int(labels[r])]/tau - m - math.Log(z)
	}
	return loss / float64(rows)
}

func refAdd(a, b []float64) []float64 {
	y := make([]float64, len(a))
	for i := range a {
		y[i] = a[i] + b[i]
	}
	return y
}
