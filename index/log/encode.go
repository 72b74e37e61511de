package log

import (
	"errors"
	"fmt"
)

// typeWord returns the type word written for r: its type, protection bits
// for expunges, and its flags.
func typeWord(r Record) uint32 {
	w := uint32(r.Type())
	if u, ok := r.(*Unknown); ok {
		w = u.TypeWord & TypeMask
	}
	switch r.Type() {
	case TypeExpunge, TypeExpungeGUID:
		w |= ExpungeProt
	}
	return w | uint32(FlagsOf(r)&(External|Sync))
}

func putU16(b []byte, v uint16) []byte { return le.AppendUint16(b, v) }
func putU32(b []byte, v uint32) []byte { return le.AppendUint32(b, v) }

func padTo4(b []byte, start int) []byte {
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// AppendRecord appends r's encoding (size word, type word, payload padded
// to 4 bytes) to b. It refuses records Dovecot would reject as malformed:
// empty payloads, unencodable sizes, keyword names that are empty, and
// ExtRecUpdate entries of different sizes.
func AppendRecord(b []byte, r Record) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = putU32(b, typeWord(r))
	p := len(b)
	switch r := r.(type) {
	case *Expunge:
		for _, x := range r.Ranges {
			b = putU32(putU32(b, x.UID1), x.UID2)
		}
	case *KeywordReset:
		for _, x := range r.Ranges {
			b = putU32(putU32(b, x.UID1), x.UID2)
		}
	case *ExpungeGUID:
		for _, e := range r.Entries {
			b = putU32(b, e.UID)
			b = append(b, e.GUID[:]...)
		}
	case *Append:
		for _, a := range r.Recs {
			b = putU32(b, a.UID)
			b = append(b, a.Flags, 0, 0, 0)
		}
	case *FlagUpdate:
		for _, c := range r.Changes {
			b = putU32(putU32(b, c.UID1), c.UID2)
			b = append(b, c.Add, c.Remove, c.ModSeqInc, 0)
		}
	case *HeaderUpdate:
		for _, c := range r.Changes {
			if c.Offset > 0xffff || len(c.Data) > 0xffff {
				return nil, errors.New("log: header update too large for the 16-bit form")
			}
			q := len(b)
			b = putU16(putU16(b, uint16(c.Offset)), uint16(len(c.Data)))
			b = padTo4(append(b, c.Data...), q)
		}
	case *ExtHdrUpdate:
		for _, c := range r.Changes {
			q := len(b)
			if r.Wide {
				b = putU32(putU32(b, c.Offset), uint32(len(c.Data)))
			} else {
				if c.Offset > 0xffff || len(c.Data) > 0xffff {
					return nil, errors.New("log: ext header update too large for the 16-bit form")
				}
				b = putU16(putU16(b, uint16(c.Offset)), uint16(len(c.Data)))
			}
			b = padTo4(append(b, c.Data...), q)
		}
	case *ExtIntro:
		if len(r.Name) > 0xffff {
			return nil, errors.New("log: extension name too long")
		}
		b = putU32(putU32(putU32(b, r.ExtID), r.ResetID), r.HdrSize)
		b = putU16(putU16(putU16(b, r.RecordSize), r.RecordAlign), r.IntroFlags)
		b = putU16(b, uint16(len(r.Name)))
		b = append(b, r.Name...)
	case *ExtReset:
		b = putU32(b, r.NewResetID)
		var keep byte
		if r.PreserveData {
			keep = 1
		}
		b = append(b, keep, 0, 0, 0)
	case *ExtRecUpdate:
		if r.Recs == nil {
			b = append(b, r.Raw...)
			break
		}
		for _, e := range r.Recs {
			if len(e.Data) != len(r.Recs[0].Data) {
				return nil, errors.New("log: ext record updates of different sizes in one record")
			}
			q := len(b)
			b = padTo4(append(putU32(b, e.UID), e.Data...), q)
		}
	case *ExtAtomicInc:
		for _, x := range r.Incs {
			b = putU32(putU32(b, x.UID), uint32(x.Diff))
		}
	case *KeywordUpdate:
		if r.Name == "" || len(r.Name) > 0xffff {
			return nil, fmt.Errorf("log: invalid keyword name %q", r.Name)
		}
		var mod byte
		if r.Remove {
			mod = 1
		}
		b = append(b, mod, 0)
		b = putU16(b, uint16(len(r.Name)))
		b = padTo4(append(b, r.Name...), p)
		for _, x := range r.Ranges {
			b = putU32(putU32(b, x.UID1), x.UID2)
		}
	case *ModSeqUpdate:
		for _, e := range r.Entries {
			b = putU32(putU32(putU32(b, e.UID), uint32(e.ModSeq)), uint32(e.ModSeq>>32))
		}
	case *IndexDeleted, *IndexUndeleted:
		b = append(b, 0, 0, 0, 0)
	case *Boundary:
		b = putU32(b, r.Size)
	case *AttributeUpdate:
		for _, c := range r.Changes {
			if c.Key == "" {
				return nil, errors.New("log: empty attribute key")
			}
			op, typ := byte('-'), byte('s')
			if c.Set {
				op = '+'
			}
			if c.Private {
				typ = 'p'
			}
			b = append(b, op, typ)
			b = append(b, c.Key...)
			b = append(b, 0)
		}
		b = padTo4(append(b, 0), p)
		for _, c := range r.Changes {
			b = putU32(b, c.Timestamp)
			if c.Set {
				b = putU32(b, c.ValueLen)
			}
		}
	case *Unknown:
		b = append(b, r.Payload...)
	default:
		panic(fmt.Sprintf("log: unknown record type %T", r))
	}
	b = padTo4(b, p)
	if len(b) == p {
		return nil, fmt.Errorf("log: empty %s record", r.Type())
	}
	n := len(b) - start
	if n > MaxRecordSize {
		return nil, fmt.Errorf("log: %s record of %d bytes is too large", r.Type(), n)
	}
	sz := EncodeSize(uint32(n))
	copy(b[start:], sz[:])
	return b, nil
}
