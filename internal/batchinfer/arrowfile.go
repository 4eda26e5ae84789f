package batchinfer

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// A strict reader of the one Arrow IPC file shape EncodePredictions writes. It
// exists because arrow-go's readers trust the lengths in a file's flatbuffers:
// fuzzing ReadPredictions over ipc.NewMappedFileReader found a 176-byte input
// that made it allocate 150 GB (schemaFromFB makes a slice of the fields
// vector's length before looking at a field), which no recover catches. The
// predictions cross the network as an object's bytes, so they are read here:
// every offset and length is checked against the bytes before it is used, and
// the score bitmap is read where it lies.
//
// The layout (https://arrow.apache.org/docs/format/Columnar.html#ipc-file-format):
// "ARROW1\0\0", the stream's messages, the Footer flatbuffer, its int32 length,
// "ARROW1". The Footer's schema must be one non-nullable bool column "score", and it must
// list one record batch, whose message (a Message flatbuffer with a RecordBatch
// header) names one field node and two buffers (validity, values) in its body.

const arrowMagic = "ARROW1"

// Flatbuffer enum values of Arrow's Schema.fbs and Message.fbs.
const (
	arrowMetadataV4        = 3
	arrowMetadataV5        = 4
	arrowTypeBool          = 6
	arrowHeaderRecordBatch = 3
)

// fb is a flatbuffer: every read is checked against its bytes.
type fb []byte

func (b fb) u32(pos int64) (uint32, error) {
	if pos < 0 || pos > int64(len(b))-4 {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(b))
	}
	return binary.LittleEndian.Uint32(b[pos:]), nil
}

func (b fb) u16(pos int64) (uint16, error) {
	if pos < 0 || pos > int64(len(b))-2 {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(b))
	}
	return binary.LittleEndian.Uint16(b[pos:]), nil
}

func (b fb) i64(pos int64) (int64, error) {
	if pos < 0 || pos > int64(len(b))-8 {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(b))
	}
	return int64(binary.LittleEndian.Uint64(b[pos:])), nil
}

// table is a flatbuffer table: its position and its vtable's.
type table struct {
	b           fb
	pos, vt     int64
	vtLen, tLen uint16
}

// root returns the buffer's root table.
func (b fb) root() (table, error) {
	off, err := b.u32(0)
	if err != nil {
		return table{}, err
	}
	return b.tableAt(int64(off))
}

func (b fb) tableAt(pos int64) (table, error) {
	so, err := b.u32(pos)
	if err != nil {
		return table{}, err
	}
	vt := pos - int64(int32(so))
	vtLen, err := b.u16(vt)
	if err != nil {
		return table{}, fmt.Errorf("vtable: %w", err)
	}
	tLen, err := b.u16(vt + 2)
	if err != nil {
		return table{}, fmt.Errorf("vtable: %w", err)
	}
	if vtLen < 4 || vtLen%2 != 0 || vt+int64(vtLen) > int64(len(b)) || pos+int64(tLen) > int64(len(b)) || tLen < 4 {
		return table{}, fmt.Errorf("table at %d: vtable of %d bytes for a %d-byte table does not fit the %d-byte buffer", pos, vtLen, tLen, len(b))
	}
	return table{b: b, pos: pos, vt: vt, vtLen: vtLen, tLen: tLen}, nil
}

// field returns the position of field i and whether it is present; a present
// field of size bytes must lie inside the table.
func (t table) field(i int, size int64) (int64, bool, error) {
	at := int64(4 + 2*i)
	if at+2 > int64(t.vtLen) {
		return 0, false, nil
	}
	off, err := t.b.u16(t.vt + at)
	if err != nil || off == 0 {
		return 0, false, err
	}
	if int64(off)+size > int64(t.tLen) {
		return 0, false, fmt.Errorf("field %d at %d+%d outside its %d-byte table", i, off, size, t.tLen)
	}
	return t.pos + int64(off), true, nil
}

func (t table) scalar(i int, size int64, def int64) (int64, error) {
	pos, ok, err := t.field(i, size)
	if err != nil || !ok {
		return def, err
	}
	switch size {
	case 1:
		return int64(t.b[pos]), nil
	case 2:
		v, err := t.b.u16(pos)
		return int64(int16(v)), err
	default:
		return t.b.i64(pos)
	}
}

// ref follows field i, an offset to a table, vector or string; ok is false if absent.
func (t table) ref(i int) (int64, bool, error) {
	pos, ok, err := t.field(i, 4)
	if err != nil || !ok {
		return 0, false, err
	}
	off, err := t.b.u32(pos)
	if err != nil {
		return 0, false, err
	}
	return pos + int64(off), true, nil
}

func (t table) child(i int) (table, bool, error) {
	pos, ok, err := t.ref(i)
	if err != nil || !ok {
		return table{}, ok, err
	}
	c, err := t.b.tableAt(pos)
	return c, true, err
}

// vector returns the position of field i's first element and the element
// count, each element elem bytes, all inside the buffer (0, 0 if absent).
func (t table) vector(i int, elem int64) (int64, int64, error) {
	pos, ok, err := t.ref(i)
	if err != nil || !ok {
		return 0, 0, err
	}
	n, err := t.b.u32(pos)
	if err != nil {
		return 0, 0, err
	}
	if int64(n) > (int64(len(t.b))-pos-4)/elem {
		return 0, 0, fmt.Errorf("vector of %d %d-byte elements at %d does not fit the %d-byte buffer", n, elem, pos, len(t.b))
	}
	return pos + 4, int64(n), nil
}

func (t table) str(i int) (string, error) {
	pos, n, err := t.vector(i, 1)
	if err != nil {
		return "", err
	}
	return string(t.b[pos : pos+n]), nil
}

// readArrowScores checks that b is an Arrow IPC file of one record batch of
// one non-nullable bool column, score, and returns its row count and the count of true scores,
// with the bitmap read in place (inPlace: it lies inside b).
func readArrowScores(b []byte) (rows, tips int64, bitmap []byte, err error) {
	n := int64(len(b))
	if n < 8+8+4+6 || string(b[:6]) != arrowMagic || string(b[n-6:]) != arrowMagic {
		return 0, 0, nil, fmt.Errorf("no %q magic at both ends", arrowMagic)
	}
	footerLen := int64(int32(binary.LittleEndian.Uint32(b[n-10:])))
	if footerLen <= 0 || footerLen > n-10-8 {
		return 0, 0, nil, fmt.Errorf("footer of %d bytes in a %d-byte file", footerLen, n)
	}
	footer, err := fb(b[n-10-footerLen : n-10]).root()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("footer: %w", err)
	}
	if v, err := footer.scalar(0, 2, 0); err != nil || (v != arrowMetadataV4 && v != arrowMetadataV5) {
		return 0, 0, nil, fmt.Errorf("footer: metadata version %d (%v), want V4 or V5", v, err)
	}
	schema, ok, err := footer.child(1)
	if err != nil || !ok {
		return 0, 0, nil, fmt.Errorf("footer: no schema (%v)", err)
	}
	if err := checkScoreSchema(schema); err != nil {
		return 0, 0, nil, fmt.Errorf("schema: %w (want one non-nullable bool column, score)", err)
	}
	if _, nd, err := footer.vector(2, 24); err != nil || nd != 0 {
		return 0, 0, nil, fmt.Errorf("footer: %d dictionaries (%v), want none", nd, err)
	}
	blocks, nb, err := footer.vector(3, 24)
	if err != nil || nb != 1 {
		return 0, 0, nil, fmt.Errorf("footer: %d record batches (%v), want 1", nb, err)
	}
	fbuf := footer.b
	off, _ := fbuf.i64(blocks)
	metaLen32, _ := fbuf.u32(blocks + 8)
	metaLen := int64(int32(metaLen32))
	bodyLen, _ := fbuf.i64(blocks + 16)
	end := n - 10 - footerLen
	if off < 8 || metaLen < 8 || bodyLen < 0 || off > end || metaLen > end-off || bodyLen > end-off-metaLen || off%8 != 0 {
		return 0, 0, nil, fmt.Errorf("record batch block (offset %d, metadata %d, body %d) outside the file's %d bytes of messages", off, metaLen, bodyLen, end)
	}
	meta := b[off : off+metaLen]
	body := b[off+metaLen : off+metaLen+bodyLen]
	if binary.LittleEndian.Uint32(meta) == math.MaxUint32 { // the continuation marker
		meta = meta[4:]
	}
	fbLen := int64(int32(binary.LittleEndian.Uint32(meta)))
	if fbLen <= 0 || fbLen > int64(len(meta))-4 {
		return 0, 0, nil, fmt.Errorf("record batch message of %d bytes in a %d-byte block", fbLen, len(meta))
	}
	msg, err := fb(meta[4 : 4+fbLen]).root()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("record batch message: %w", err)
	}
	if ht, err := msg.scalar(1, 1, 0); err != nil || ht != arrowHeaderRecordBatch {
		return 0, 0, nil, fmt.Errorf("message header type %d (%v), want a record batch", ht, err)
	}
	if bl, err := msg.scalar(3, 8, 0); err != nil || bl != bodyLen {
		return 0, 0, nil, fmt.Errorf("message body of %d bytes (%v), the footer says %d", bl, err, bodyLen)
	}
	rb, ok, err := msg.child(2)
	if err != nil || !ok {
		return 0, 0, nil, fmt.Errorf("message: no record batch (%v)", err)
	}
	if rows, err = rb.scalar(0, 8, 0); err != nil || rows < 0 {
		return 0, 0, nil, fmt.Errorf("record batch of %d rows (%v)", rows, err)
	}
	if _, ok, err := rb.field(3, 4); err != nil || ok {
		return 0, 0, nil, fmt.Errorf("record batch: compressed (%v): predictions are written uncompressed", err)
	}
	nodes, nn, err := rb.vector(1, 16)
	if err != nil || nn != 1 {
		return 0, 0, nil, fmt.Errorf("record batch: %d field nodes (%v), want 1", nn, err)
	}
	mb := rb.b
	length, _ := mb.i64(nodes)
	nulls, _ := mb.i64(nodes + 8)
	if length != rows || nulls != 0 {
		return 0, 0, nil, fmt.Errorf("record batch: the score column has %d values and %d nulls for %d rows, want %d and none", length, nulls, rows, rows)
	}
	bufs, nbuf, err := rb.vector(2, 16)
	if err != nil || nbuf != 2 {
		return 0, 0, nil, fmt.Errorf("record batch: %d buffers (%v), want 2 (validity, values)", nbuf, err)
	}
	vOff, _ := mb.i64(bufs + 16)
	vLen, _ := mb.i64(bufs + 24)
	need := (rows + 7) / 8
	if vOff < 0 || vLen < need || vOff > bodyLen || vLen > bodyLen-vOff {
		return 0, 0, nil, fmt.Errorf("record batch: values buffer (offset %d, %d bytes) for %d rows outside the %d-byte body", vOff, vLen, rows, bodyLen)
	}
	bitmap = body[vOff : vOff+need]
	return rows, countBits(bitmap, rows), bitmap, nil
}

// checkScoreSchema checks that schema is the predictions': little-endian, one
// field "score", a non-nullable bool without dictionary or children.
func checkScoreSchema(schema table) error {
	if e, err := schema.scalar(0, 2, 0); err != nil || e != 0 {
		return fmt.Errorf("endianness %d (%v), want little", e, err)
	}
	fields, nf, err := schema.vector(1, 4)
	if err != nil || nf != 1 {
		return fmt.Errorf("%d fields (%v), want 1", nf, err)
	}
	off, _ := schema.b.u32(fields)
	f, err := schema.b.tableAt(fields + int64(off))
	if err != nil {
		return fmt.Errorf("field: %w", err)
	}
	name, err := f.str(0)
	if err != nil || name != "score" {
		return fmt.Errorf("field %q (%v), want score", name, err)
	}
	if nullable, err := f.scalar(1, 1, 0); err != nil || nullable != 0 {
		return fmt.Errorf("score nullable (%v)", err)
	}
	if tt, err := f.scalar(2, 1, 0); err != nil || tt != arrowTypeBool {
		return fmt.Errorf("score of type %d (%v), want bool", tt, err)
	}
	if _, ok, err := f.field(4, 4); err != nil || ok {
		return fmt.Errorf("score dictionary-encoded (%v)", err)
	}
	if _, nc, err := f.vector(5, 4); err != nil || nc != 0 {
		return fmt.Errorf("score with %d children (%v)", nc, err)
	}
	return nil
}

// countBits counts the set bits among the first n of bitmap (LSB first).
func countBits(bitmap []byte, n int64) int64 {
	var c int64
	full := n / 8
	i := int64(0)
	for ; i+8 <= full; i += 8 {
		c += int64(bits.OnesCount64(binary.LittleEndian.Uint64(bitmap[i:])))
	}
	for ; i < full; i++ {
		c += int64(bits.OnesCount8(bitmap[i]))
	}
	if r := n % 8; r != 0 {
		c += int64(bits.OnesCount8(bitmap[full] & (1<<r - 1)))
	}
	return c
}
