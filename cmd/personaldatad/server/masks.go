package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The gateway's JSON spells fields by their proto names (given_name), but
// protojson reads a google.protobuf.FieldMask only as lowerCamelCase paths
// (givenName). A REST body may spell a mask's paths either way: before the
// body is read, each path given as the fields are spelt is turned into the
// lowerCamelCase that protojson reads (and turns back into proto names).

const fieldMaskName = "google.protobuf.FieldMask"

// A path's part spelt as a proto name, or in lowerCamelCase.
var (
	snakePart = regexp.MustCompile(`^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$`)
	camelPart = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
)

// maskError is what spellMasks says of a mask it cannot read, naming the
// field by its path from the request (see maskParam in rejection.go).
func maskError(field string) error {
	return fmt.Errorf("field mask %s: a path is not a field name", field)
}

// hasMask says whether a message of md can hold a FieldMask, at any depth.
func hasMask(md protoreflect.MessageDescriptor) bool {
	return reachesMask(md, map[protoreflect.FullName]bool{})
}

func reachesMask(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if md.FullName() == fieldMaskName {
		return true
	}
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		if fd.IsMap() {
			continue
		}
		if fd.Message() != nil && reachesMask(fd.Message(), seen) {
			return true
		}
	}
	return false
}

// spellMasks returns the JSON object raw, a message of md, with the paths
// of every FieldMask in it in lowerCamelCase. Everything else is copied as
// it is, duplicate keys included (protojson refuses those).
func spellMasks(raw []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var out bytes.Buffer
	if err := copyValue(d, &out, md, nil, ""); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// copyValue copies one JSON value from d to out. md is the message the value
// is (nil if not a known message); fd the field it is the value of (nil at
// the top), path that field's path from the request.
func copyValue(d *json.Decoder, out *bytes.Buffer, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, path string) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			out.WriteByte('{')
			for first := true; d.More(); first = false {
				key, err := d.Token()
				if err != nil {
					return err
				}
				name, ok := key.(string)
				if !ok {
					return errors.New("object key is not a string")
				}
				if !first {
					out.WriteByte(',')
				}
				k, _ := json.Marshal(name)
				out.Write(k)
				out.WriteByte(':')
				var child protoreflect.FieldDescriptor
				var childMD protoreflect.MessageDescriptor
				if md != nil && md.FullName() != fieldMaskName {
					child = md.Fields().ByName(protoreflect.Name(name))
					if child == nil {
						child = md.Fields().ByJSONName(name)
					}
					if child != nil && !child.IsMap() {
						childMD = child.Message()
					}
				}
				childPath := name
				if child != nil {
					childPath = string(child.Name())
				}
				if path != "" {
					childPath = path + "." + childPath
				}
				if err := copyValue(d, out, childMD, child, childPath); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil { // '}'
				return err
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for first := true; d.More(); first = false {
				if !first {
					out.WriteByte(',')
				}
				if err := copyValue(d, out, md, fd, path); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil { // ']'
				return err
			}
			out.WriteByte(']')
		}
	case string:
		if md != nil && md.FullName() == fieldMaskName {
			s, err := camelPaths(t)
			if err != nil {
				return maskError(path)
			}
			t = s
		}
		b, _ := json.Marshal(t)
		out.Write(b)
	case json.Number:
		out.WriteString(t.String())
	case bool:
		fmt.Fprint(out, t)
	case nil:
		out.WriteString("null")
	}
	return nil
}

// camelPaths is a mask's JSON string with each path in lowerCamelCase:
// "given_name,email" and "givenName,email" are both "givenName,email".
func camelPaths(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return s, nil
	}
	paths := strings.Split(s, ",")
	for i, p := range paths {
		parts := strings.Split(strings.TrimSpace(p), ".")
		for j, part := range parts {
			switch {
			case camelPart.MatchString(part):
			case snakePart.MatchString(part):
				words := strings.Split(part, "_")
				for k := 1; k < len(words); k++ {
					words[k] = strings.ToUpper(words[k][:1]) + words[k][1:]
				}
				parts[j] = strings.Join(words, "")
			default:
				return "", errors.New("not a path")
			}
		}
		paths[i] = strings.Join(parts, ".")
	}
	return strings.Join(paths, ","), nil
}
