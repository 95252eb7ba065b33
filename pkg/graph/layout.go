package graph

import (
	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Channel-blocked layouts. A backend with device.Blocked runs some
// convolutions on kernels that keep activations in a channel-blocked
// layout; every call that is given NCHW reorders its operands there and
// back. Compile chooses, for every activation, NCHW or a channel block so
// that the activations between such convolutions stay blocked: the values
// that must share a layout (the operands of one elementwise op, of a
// BatchNorm, of a pooling) form groups, and a group is blocked only if every
// op touching it takes the layout, every convolution operand in it prefers
// the same block, every member's channels are a multiple of it, and no
// member is a plan input, constant or output (which the host reads and
// writes as NCHW). Every other group stays NCHW: an op that does not declare
// its layouts keeps all its operands NCHW.

// Operand classes of layoutSlots besides a slot index.
const (
	plainOperand = -1 // taken as NCHW only (or not an activation)
	anyOperand   = -2 // read where the layout does not apply (dγ, dβ of BatchNorm's backward)
)

// layoutSlot is a set of an op's operands that share one layout:
// activations of channels channels. want is the block the op's kernel
// keeps them in (device.Blocked.ConvBlocks; 0 NCHW), or −1 where the op
// takes any layout at the same cost.
type layoutSlot struct {
	channels, want int
}

// blockable is implemented by ops whose kernels take activations in a
// channel-blocked layout.
type blockable interface {
	// layoutSlots returns the class of each input, then of the output —
	// plainOperand, anyOperand or an index into slots — for node n of
	// the op on a backend with bl.
	layoutSlots(n *gorgonia.Node, bl device.Blocked) (operands []int, slots []layoutSlot)
	// withBlocks returns the kernel with the operands of slot i in
	// layout blocks[i] (0 NCHW, else the channel block).
	withBlocks(blocks []int) Kernel
}

// elementwiseSlots puts every operand of an elementwise op whose result is
// n in one slot of any layout, where n is an N×C×H×W activation.
func elementwiseSlots(n *gorgonia.Node, inputs int) ([]int, []layoutSlot) {
	operands := make([]int, inputs+1)
	if n.Dims() != 4 {
		for i := range operands {
			operands[i] = plainOperand
		}
		return operands, nil
	}
	return operands, []layoutSlot{{channels: n.Shape()[1], want: -1}}
}

// chooseLayouts replaces the kernels of the nodes in order whose operands
// get a channel-blocked layout on bl; keep are the plan's inputs,
// constants and outputs.
func chooseLayouts(bl device.Blocked, order []*gorgonia.Node, kids map[*gorgonia.Node][]*gorgonia.Node,
	kernels map[*gorgonia.Node]Kernel, keep map[*gorgonia.Node]bool) {
	parent := make(map[*gorgonia.Node]*gorgonia.Node, len(order))
	var find func(n *gorgonia.Node) *gorgonia.Node
	find = func(n *gorgonia.Node) *gorgonia.Node {
		p, ok := parent[n]
		if !ok || p == n {
			return n
		}
		r := find(p)
		parent[n] = r
		return r
	}
	type group struct {
		plain    bool
		channels []int
		wants    []int
	}
	type member struct {
		n    *gorgonia.Node
		slot layoutSlot
	}
	plain := make(map[*gorgonia.Node]bool)
	var members []member
	type decl struct {
		operands []int
		slots    []layoutSlot
	}
	decls := make(map[*gorgonia.Node]decl)
	for _, n := range order {
		if keep[n] {
			plain[n] = true
		}
		operands := append(append([]*gorgonia.Node{}, kids[n]...), n)
		b, ok := kernels[n].(blockable)
		if !ok {
			for _, o := range operands {
				plain[o] = true
			}
			continue
		}
		cls, slots := b.layoutSlots(n, bl)
		decls[n] = decl{cls, slots}
		first := make([]*gorgonia.Node, len(slots))
		for i, o := range operands {
			switch c := cls[i]; c {
			case plainOperand:
				plain[o] = true
			case anyOperand:
			default:
				members = append(members, member{o, slots[c]})
				if first[c] == nil {
					first[c] = o
				} else if r, s := find(first[c]), find(o); r != s {
					parent[s] = r
				}
			}
		}
	}
	groups := make(map[*gorgonia.Node]*group)
	at := func(n *gorgonia.Node) *group {
		r := find(n)
		if groups[r] == nil {
			groups[r] = &group{}
		}
		return groups[r]
	}
	for n := range plain {
		at(n).plain = true
	}
	for _, m := range members {
		g := at(m.n)
		g.channels = append(g.channels, m.slot.channels)
		if m.slot.want >= 0 {
			g.wants = append(g.wants, m.slot.want)
		}
	}
	block := func(n *gorgonia.Node) int {
		g := at(n)
		if g.plain || len(g.wants) == 0 {
			return 0
		}
		b := g.wants[0]
		for _, w := range g.wants {
			if w != b || w == 0 {
				return 0 // NCHW where a convolution of the group wants it or kernels disagree
			}
		}
		for _, c := range g.channels {
			if c%b != 0 {
				return 0
			}
		}
		return b
	}
	for n, d := range decls {
		blocks := make([]int, len(d.slots))
		blocked := false
		for i, c := range d.operands {
			if c < 0 {
				continue
			}
			o := n
			if i < len(kids[n]) {
				o = kids[n][i]
			}
			blocks[c] = block(o)
			blocked = blocked || blocks[c] != 0
		}
		if blocked {
			kernels[n] = kernels[n].(blockable).withBlocks(blocks)
		}
	}
}
