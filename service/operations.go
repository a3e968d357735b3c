package service

import (
	"path"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// Operation is one method of AuthService as every part of the facade names
// and treats it: the service's metrics, policy, errors and call lines, the
// JSON gateway, and the wiring. Its name and idempotence come from the
// service's descriptor; the rest from operationSpecs.
type Operation struct {
	// Method is the full gRPC method, such as
	// /dintero.auth.v1.AuthService/DeleteClientGrant.
	Method string
	// Name is the method's name, such as DeleteClientGrant: the operation
	// label of the service's metrics, the operation a policy rule names,
	// and the name errors are built for.
	Name string
	// Idempotent is the method's idempotency_level option: a call made
	// twice has the effect of one.
	Idempotent bool
	// Audited makes the line of every call an audit line, whatever
	// credentials it used: a call that destroys something.
	Audited bool
	// SentKey, for a method that is not idempotent, names the ErrorInfo
	// metadata entry by which every error of a call says whether the
	// request may have reached Dintero ("true" unless it is known that it
	// did not), so that a caller knows whether what it sent is spent.
	SentKey string
	// Upstream is the Dintero operation the method calls: its name is
	// the operation label of upstream's metrics, its operationId the one
	// in Dintero's spec.
	Upstream *upstream.Operation
}

// operationSpecs say, for each method by its generated name, what the
// descriptor does not. A method missing here has none of it: the
// operations test fails until it is added.
var operationSpecs = map[string]Operation{
	authv1.AuthService_DeleteClientGrant_FullMethodName: {Audited: true, Upstream: upstream.OpDeleteClientGrant},
	authv1.AuthService_Authorize_FullMethodName:         {SentKey: MetadataKeyVerificationCodeSent, Upstream: upstream.OpAuthorize},
}

// operations are the service's methods, in the descriptor's order, and
// byName indexes them by name.
var (
	operations = describe(authv1.File_dintero_auth_v1_auth_proto.Services().ByName("AuthService"))
	byName     = index(operations)
)

// describe builds the operations of service sd from its descriptor and
// operationSpecs.
func describe(sd protoreflect.ServiceDescriptor) []Operation {
	ms := sd.Methods()
	out := make([]Operation, 0, ms.Len())
	for i := range ms.Len() {
		m := ms.Get(i)
		full := "/" + string(sd.FullName()) + "/" + string(m.Name())
		op := operationSpecs[full]
		op.Method, op.Name = full, string(m.Name())
		if o, ok := m.Options().(*descriptorpb.MethodOptions); ok {
			op.Idempotent = o.GetIdempotencyLevel() == descriptorpb.MethodOptions_IDEMPOTENT ||
				o.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
		}
		out = append(out, op)
	}
	return out
}

func index(ops []Operation) map[string]*Operation {
	m := make(map[string]*Operation, len(ops))
	for i := range ops {
		m[ops[i].Name] = &ops[i]
	}
	return m
}

// Operations returns the service's operations, in the order of its
// descriptor.
func Operations() []Operation {
	return append([]Operation(nil), operations...)
}

// OperationOf returns the operation of a full gRPC method; false for a
// method the service does not have.
func OperationOf(method string) (Operation, bool) {
	op := byName[path.Base(method)]
	if op == nil || op.Method != method {
		return Operation{}, false
	}
	return *op, true
}

// operation returns the operation named name; the zero Operation for a
// name the service does not have (a refusal that belongs to no operation).
func operation(name string) Operation {
	if op := byName[name]; op != nil {
		return *op
	}
	return Operation{}
}

// names returns the operations' names.
func names() []string {
	out := make([]string, 0, len(operations))
	for _, op := range operations {
		out = append(out, op.Name)
	}
	return out
}
