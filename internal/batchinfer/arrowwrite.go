package batchinfer

import (
	"encoding/binary"
	"math"
)

// A writer of the one Arrow IPC file shape the predictions need, the
// counterpart of arrowfile.go's reader: arrow-go's ipc package (with the
// arrow, array and memory packages it needs) added 5.7 MB to cmd/trove for
// writing one boolean column (perf.md), so the file is laid out here. The
// tests read what it writes with arrow-go's own reader.
//
// Flatbuffers are written front to back: a table's vtable just before it (its
// soffset positive), its children after it (their uoffsets positive), every
// scalar aligned to its size from the start of the buffer, which is 8-aligned
// in the file.

// fbWriter builds one flatbuffer.
type fbWriter struct{ b []byte }

func (w *fbWriter) pad(align int) {
	for len(w.b)%align != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *fbWriter) putU32(pos, v int) { binary.LittleEndian.PutUint32(w.b[pos:], uint32(v)) }

// fbField is one field of a table: a scalar of size bytes, or (child != nil)
// an offset to the object child writes, returning its position. The zero
// fbField is an absent field.
type fbField struct {
	size  int
	val   uint64
	child func(w *fbWriter) int
}

func scalar(size int, v uint64) fbField        { return fbField{size: size, val: v} }
func offset(child func(*fbWriter) int) fbField { return fbField{size: 4, child: child} }

// table writes a table whose field i is fields[i], then its children, and
// returns the table's position.
func (w *fbWriter) table(fields ...fbField) int {
	// The table's layout: the soffset, then the fields largest first, each
	// aligned to its size (the table starts 8-aligned).
	at := make([]int, len(fields))
	end := 4
	for _, size := range []int{8, 4, 2, 1} {
		for i, f := range fields {
			if f.size == size {
				end = (end + size - 1) / size * size
				at[i] = end
				end += size
			}
		}
	}
	vtLen := 4 + 2*len(fields)
	for (len(w.b)+vtLen)%8 != 0 {
		w.b = append(w.b, 0)
	}
	vt := len(w.b)
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(vtLen))
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(end))
	for i, f := range fields {
		if f.size == 0 {
			at[i] = 0
		}
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(at[i]))
	}
	pos := len(w.b)
	w.b = append(w.b, make([]byte, end)...)
	binary.LittleEndian.PutUint32(w.b[pos:], uint32(pos-vt))
	for i, f := range fields {
		switch f.size {
		case 1:
			w.b[pos+at[i]] = byte(f.val)
		case 2:
			binary.LittleEndian.PutUint16(w.b[pos+at[i]:], uint16(f.val))
		case 4:
			binary.LittleEndian.PutUint32(w.b[pos+at[i]:], uint32(f.val))
		case 8:
			binary.LittleEndian.PutUint64(w.b[pos+at[i]:], f.val)
		}
	}
	for i, f := range fields {
		if f.child != nil {
			c := f.child(w)
			w.putU32(pos+at[i], c-(pos+at[i]))
		}
	}
	return pos
}

// structs writes a vector of n structs of elem bytes each (data), its
// elements 8-aligned, and returns its position.
func (w *fbWriter) structs(n int, data []byte) int {
	for (len(w.b)+4)%8 != 0 {
		w.b = append(w.b, 0)
	}
	pos := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(n))
	w.b = append(w.b, data...)
	return pos
}

// tables writes a vector of offsets to the tables children write.
func (w *fbWriter) tables(children ...func(*fbWriter) int) int {
	w.pad(4)
	pos := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(children)))
	w.b = append(w.b, make([]byte, 4*len(children))...)
	for i, c := range children {
		at := pos + 4 + 4*i
		w.putU32(at, c(w)-at)
	}
	return pos
}

func (w *fbWriter) str(s string) int {
	w.pad(4)
	pos := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(append(w.b, s...), 0)
	return pos
}

// finish returns a flatbuffer whose root is the table root writes.
func finish(root func(*fbWriter) int) []byte {
	w := &fbWriter{b: make([]byte, 8)}
	w.putU32(0, root(w))
	w.pad(8)
	return w.b
}

// scoreSchema writes Schema{endianness: Little, fields: [Field{name: "score",
// nullable: false, type: Bool, children: []}]}.
func scoreSchema(w *fbWriter) int {
	field := func(w *fbWriter) int {
		return w.table(
			offset(func(w *fbWriter) int { return w.str("score") }), // name
			scalar(1, 0),             // nullable
			scalar(1, arrowTypeBool), // type_type
			offset(func(w *fbWriter) int { return w.table() }), // type: Bool {}
			fbField{}, // dictionary
			offset(func(w *fbWriter) int { return w.tables() }), // children
		)
	}
	return w.table(
		scalar(2, 0), // endianness: Little
		offset(func(w *fbWriter) int { return w.tables(field) }),
	)
}

// message appends an encapsulated IPC message (continuation marker, metadata
// length, the Message flatbuffer padded to 8) and body, and returns the
// metadata's length as a Block counts it.
func message(file []byte, header byte, headerTable func(*fbWriter) int, body []byte) ([]byte, int) {
	meta := finish(func(w *fbWriter) int {
		return w.table(
			scalar(2, arrowMetadataV5),
			scalar(1, uint64(header)),
			offset(headerTable),
			scalar(8, uint64(len(body))),
		)
	})
	file = binary.LittleEndian.AppendUint32(file, math.MaxUint32)
	file = binary.LittleEndian.AppendUint32(file, uint32(len(meta)))
	file = append(append(file, meta...), body...)
	return file, 8 + len(meta)
}

const arrowHeaderSchema = 1

// EncodePredictions returns scores as an Arrow IPC file holding one record
// batch of one non-nullable boolean column, "score" (the seed's
// pd.DataFrame({"score": predict})): the bitmap, LSB first, padded to 8
// bytes, is the batch's body. The file form (with its footer) is what
// ReadPredictions reads in place, and what any Arrow reader opens.
func EncodePredictions(scores []bool) ([]byte, error) {
	n := len(scores)
	bitmap := make([]byte, (n+63)/64*8)
	for i, s := range scores {
		if s {
			bitmap[i/8] |= 1 << (i % 8)
		}
	}
	file := append([]byte(arrowMagic), 0, 0)
	file, _ = message(file, arrowHeaderSchema, scoreSchema, nil)
	batchAt := len(file)
	file, metaLen := message(file, arrowHeaderRecordBatch, func(w *fbWriter) int {
		nodes := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(n)), 0)
		var bufs []byte
		for _, v := range []uint64{0, 0, 0, uint64(len(bitmap))} { // validity (none), values
			bufs = binary.LittleEndian.AppendUint64(bufs, v)
		}
		return w.table(
			scalar(8, uint64(n)),
			offset(func(w *fbWriter) int { return w.structs(1, nodes) }),
			offset(func(w *fbWriter) int { return w.structs(2, bufs) }),
		)
	}, bitmap)
	file = binary.LittleEndian.AppendUint64(file, math.MaxUint32) // end of stream: the marker, then length 0
	footer := finish(func(w *fbWriter) int {
		block := binary.LittleEndian.AppendUint64(nil, uint64(batchAt))
		block = binary.LittleEndian.AppendUint32(block, uint32(metaLen))
		block = binary.LittleEndian.AppendUint64(append(block, 0, 0, 0, 0), uint64(len(bitmap)))
		return w.table(
			scalar(2, arrowMetadataV5),
			offset(scoreSchema),
			offset(func(w *fbWriter) int { return w.structs(0, nil) }),
			offset(func(w *fbWriter) int { return w.structs(1, block) }),
		)
	})
	file = append(file, footer...)
	file = binary.LittleEndian.AppendUint32(file, uint32(len(footer)))
	return append(file, arrowMagic...), nil
}
