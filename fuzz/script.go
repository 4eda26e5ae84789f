package fuzz

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what an op does to the store.
type Kind uint8

const (
	KindPut      Kind = iota + 1 // Put size bytes of seed's content: a new object and handle
	KindCreate                   // Create, filled at once; the builder stays open
	KindSeal                     // Builder.Seal (by the creating thread)
	KindAbort                    // Builder.Abort (by the creating thread)
	KindGet                      // Get, in one of the GetModes
	KindGetAll                   // GetAll of several handles, checked and released
	KindRelease                  // Object.Release of a held view
	KindDrop                     // Ref.Drop
	KindBorrow                   // Borrow by object ID: a new handle, in any thread
	KindWait                     // Wait(handles, N) with a short deadline
	KindSpill                    // Store.Spill: forced spilling
	KindPutValue                 // trove.PutValue of a Value holding refs
	KindGetValue                 // trove.GetValue: the decoded value and new handles to its refs
	KindCheck                    // a barrier: every thread stops, then Check and Stats
)

// GetMode says how a Get waits and what it keeps.
type GetMode uint8

const (
	GetRelease GetMode = iota // check the bytes, release the view
	GetHold                   // check the bytes, keep the view (named by Op.View)
	GetTimeout                // a pending object, a short deadline: ErrGetTimeout
	GetBlock                  // a pending object another thread will seal or abort: wait for it
)

// Op is one step of a script. Objects, handles and views are named by numbers
// (o1, h1, v1) that are unique in the script; an op that makes one names it.
type Op struct {
	Kind    Kind
	Thread  int     // the goroutine that runs it; unused for KindCheck
	Obj     int     // the object made (put, create, putvalue) or named (seal, abort, borrow)
	Handle  int     // the handle made (put, create, putvalue, borrow) or used (get, drop, getvalue)
	View    int     // the view made (get -> v) or released
	Handles []int   // getall, wait, spill; putvalue's refs, in order (repeats allowed)
	New     []int   // getvalue: the handles made, one per distinct ref in the value, in order
	Size    int     // put, create
	Seed    uint64  // put, create, putvalue: what the content is made from
	N       int     // wait's numReturns
	Mode    GetMode // get
}

// Script is a replayable sequence of ops against one store configuration.
type Script struct {
	Config  string // a key of Configs
	Threads int
	Ops     []Op
}

// String formats the script as text that Parse reads back.
func (s *Script) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s\nthreads %d\n", s.Config, s.Threads)
	for i := range s.Ops {
		b.WriteString(s.Ops[i].String())
		b.WriteByte('\n')
	}
	return b.String()
}

func names(prefix string, ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = prefix + strconv.Itoa(n)
	}
	return strings.Join(parts, " ")
}

// String formats one op as a line of a script.
func (op *Op) String() string {
	t := strconv.Itoa(op.Thread) + ": "
	switch op.Kind {
	case KindPut:
		return fmt.Sprintf("%sput o%d h%d size=%d seed=%d", t, op.Obj, op.Handle, op.Size, op.Seed)
	case KindCreate:
		return fmt.Sprintf("%screate o%d h%d size=%d seed=%d", t, op.Obj, op.Handle, op.Size, op.Seed)
	case KindSeal:
		return fmt.Sprintf("%sseal o%d", t, op.Obj)
	case KindAbort:
		return fmt.Sprintf("%sabort o%d", t, op.Obj)
	case KindGet:
		switch op.Mode {
		case GetHold:
			return fmt.Sprintf("%sget h%d -> v%d", t, op.Handle, op.View)
		case GetTimeout:
			return fmt.Sprintf("%sget h%d timeout", t, op.Handle)
		case GetBlock:
			return fmt.Sprintf("%sget h%d block", t, op.Handle)
		}
		return fmt.Sprintf("%sget h%d", t, op.Handle)
	case KindGetAll:
		return t + "getall " + names("h", op.Handles)
	case KindRelease:
		return fmt.Sprintf("%srelease v%d", t, op.View)
	case KindDrop:
		return fmt.Sprintf("%sdrop h%d", t, op.Handle)
	case KindBorrow:
		return fmt.Sprintf("%sborrow h%d o%d", t, op.Handle, op.Obj)
	case KindWait:
		return fmt.Sprintf("%swait %d %s", t, op.N, names("h", op.Handles))
	case KindSpill:
		return t + "spill " + names("h", op.Handles)
	case KindPutValue:
		return fmt.Sprintf("%sputvalue o%d h%d seed=%d refs=%s", t, op.Obj, op.Handle, op.Seed,
			strings.ReplaceAll(names("h", op.Handles), " ", ","))
	case KindGetValue:
		return strings.TrimRight(fmt.Sprintf("%sgetvalue h%d -> %s", t, op.Handle, names("h", op.New)), " ")
	case KindCheck:
		return "check"
	}
	return fmt.Sprintf("%s?kind%d", t, op.Kind)
}

// Parse reads a script that String wrote (or a person did): a "config" line, a
// "threads" line, then one op per line. Blank lines and text after '#' are
// ignored. Parse checks the syntax only; Plan checks that the ops make sense.
func Parse(text string) (*Script, error) {
	s := &Script{}
	for ln, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("script line %d %q: %s", ln+1, strings.TrimSpace(line), fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "config":
			if len(f) != 2 {
				return nil, fail("want: config NAME")
			}
			s.Config = f[1]
			continue
		case "threads":
			n, err := strconv.Atoi(strings.Join(f[1:], ""))
			if len(f) != 2 || err != nil || n < 1 {
				return nil, fail("want: threads N, N >= 1")
			}
			s.Threads = n
			continue
		case "check":
			if len(f) != 1 {
				return nil, fail("check takes no arguments")
			}
			s.Ops = append(s.Ops, Op{Kind: KindCheck})
			continue
		}
		op, err := parseOp(f)
		if err != nil {
			return nil, fail("%v", err)
		}
		s.Ops = append(s.Ops, op)
	}
	if s.Config == "" || s.Threads == 0 {
		return nil, fmt.Errorf("script: missing the config or threads line")
	}
	return s, nil
}

// parseOp parses "T: verb args...".
func parseOp(f []string) (Op, error) {
	var op Op
	th, ok := strings.CutSuffix(f[0], ":")
	t, err := strconv.Atoi(th)
	if !ok || err != nil || t < 0 {
		return op, fmt.Errorf("an op starts with its thread, as \"0:\"")
	}
	op.Thread = t
	if len(f) < 2 {
		return op, fmt.Errorf("no op after the thread")
	}
	verb, args := f[1], f[2:]
	p := argParser{args: args}
	switch verb {
	case "put", "create":
		op.Kind = KindPut
		if verb == "create" {
			op.Kind = KindCreate
		}
		op.Obj, op.Handle = p.name("o"), p.name("h")
		op.Size, op.Seed = int(p.key("size")), p.key("seed")
	case "seal", "abort":
		op.Kind = KindSeal
		if verb == "abort" {
			op.Kind = KindAbort
		}
		op.Obj = p.name("o")
	case "get":
		op.Kind, op.Handle = KindGet, p.name("h")
		switch p.word() {
		case "":
			op.Mode = GetRelease
		case "->":
			op.Mode, op.View = GetHold, p.name("v")
		case "timeout":
			op.Mode = GetTimeout
		case "block":
			op.Mode = GetBlock
		default:
			p.err = fmt.Errorf("get h<N> takes nothing, \"-> v<N>\", \"timeout\" or \"block\"")
		}
	case "getall", "spill":
		op.Kind = KindGetAll
		if verb == "spill" {
			op.Kind = KindSpill
		}
		op.Handles = p.rest("h")
	case "release":
		op.Kind, op.View = KindRelease, p.name("v")
	case "drop":
		op.Kind, op.Handle = KindDrop, p.name("h")
	case "borrow":
		op.Kind, op.Handle, op.Obj = KindBorrow, p.name("h"), p.name("o")
	case "wait":
		op.Kind = KindWait
		n, err := strconv.Atoi(p.word())
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("wait N h<N>...: N: %v", err)
		}
		op.N, op.Handles = n, p.rest("h")
	case "putvalue":
		op.Kind = KindPutValue
		op.Obj, op.Handle, op.Seed = p.name("o"), p.name("h"), p.key("seed")
		refs, _ := strings.CutPrefix(p.word(), "refs=")
		for _, r := range strings.Split(refs, ",") {
			if r != "" {
				op.Handles = append(op.Handles, p.parseName("h", r))
			}
		}
	case "getvalue":
		op.Kind, op.Handle = KindGetValue, p.name("h")
		if p.word() != "->" && p.err == nil {
			p.err = fmt.Errorf("want: getvalue h<N> -> h<N>...")
		}
		op.New = p.rest("h")
	default:
		return op, fmt.Errorf("unknown op %q", verb)
	}
	if p.err == nil && len(p.args) > 0 {
		p.err = fmt.Errorf("unexpected %q", p.args[0])
	}
	return op, p.err
}

// argParser takes an op's arguments one at a time, keeping the first error.
type argParser struct {
	args []string
	err  error
}

func (p *argParser) word() string {
	if len(p.args) == 0 {
		return ""
	}
	w := p.args[0]
	p.args = p.args[1:]
	return w
}

func (p *argParser) parseName(prefix, w string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(w, prefix))
	if (!strings.HasPrefix(w, prefix) || err != nil || n <= 0) && p.err == nil {
		p.err = fmt.Errorf("want a name %s<N>, N >= 1; got %q", prefix, w)
	}
	return n
}

func (p *argParser) name(prefix string) int { return p.parseName(prefix, p.word()) }

func (p *argParser) rest(prefix string) []int {
	var ns []int
	for len(p.args) > 0 {
		ns = append(ns, p.name(prefix))
	}
	return ns
}

func (p *argParser) key(k string) uint64 {
	w := p.word()
	v, ok := strings.CutPrefix(w, k+"=")
	n, err := strconv.ParseUint(v, 10, 63)
	if (!ok || err != nil) && p.err == nil {
		p.err = fmt.Errorf("want %s=N; got %q", k, w)
	}
	return n
}
