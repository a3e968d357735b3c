// Package service implements dintero.auth.v1.AuthService over Dintero's REST
// API: it validates each request, calls Dintero through upstream, and
// answers in gRPC terms.
package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/dintero-facade/dintero-facade/gen/dintero/auth/v1"
	"github.com/dintero-facade/dintero-facade/internal/idtoken"
	"github.com/dintero-facade/dintero-facade/internal/mask"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// The names of the operations, as the generated descriptor names them.
var (
	opDelete    = path.Base(authv1.AuthService_DeleteClientGrant_FullMethodName)
	opAuthorize = path.Base(authv1.AuthService_Authorize_FullMethodName)
)

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer
	dintero *upstream.Client
	opts    Options
	// policy is the policy in force, which SetPolicy replaces; nil lets
	// every caller use the facade's credentials.
	policy atomic.Pointer[Policy]
}

// Options configure a Server.
type Options struct {
	// Policy says who may act with the facade's own credentials; nil lets
	// every caller use them.
	Policy *Policy
	// Counters count the decisions about the facade's credentials, the
	// answers it could not read whole and the id_tokens verified; nil
	// counts nothing.
	Counters *Counters
	// IDTokenIssuer is the iss authorize's id_tokens must have, the
	// upstream client's IDTokenOptions.Issuer: the service does not check
	// it (upstream does) but lists the check in its answers when it is
	// set. Empty: the issuer is not checked.
	IDTokenIssuer string
	// ReturnOIDCClientSecret returns the deleted grant's oidc.client_secret
	// to the caller. By default it is withheld, and the call's log line
	// names the field: it is the secret of the grant's identity provider,
	// and may still be valid there.
	ReturnOIDCClientSecret bool
}

// New returns a Server that calls Dintero with client.
func New(client *upstream.Client, opts Options) *Server {
	s := &Server{dintero: client, opts: opts}
	s.policy.Store(opts.Policy)
	return s
}

// SetPolicy puts p in force for the calls decided from now on; a call
// already decided keeps the decision. A policy cannot be taken away at run
// time (nil is refused): that would let every caller act with the
// facade's credentials.
func (s *Server) SetPolicy(p *Policy) error {
	if p == nil {
		return errors.New("no policy: a policy cannot be turned off without a restart")
	}
	s.policy.Store(p)
	return nil
}

// Decisions about the use of the facade's own credentials, as logged and
// counted.
const (
	decisionOwnToken      = "own_token"      // the caller brought its own token
	decisionNoCredentials = "no_credentials" // none for the account: Unauthenticated
	decisionUnrestricted  = "unrestricted"   // no policy: every caller may
	decisionAllowed       = "allowed"        // the policy allows it
	decisionDenied        = "denied"         // the policy does not: PermissionDenied
)

// authenticate decides how the call authenticates at Dintero: with the
// caller's own token always; else with the facade's credentials for
// account, when the policy allows the caller (its mTLS identity) op on it.
// The credentials and the policy are read once, so that the call uses the
// very credentials the decision was made on, by one policy, whatever a
// reload does meanwhile. A denial sends nothing.
func (s *Server) authenticate(ctx context.Context, info *outcome, call *upstream.Call, op, account string) error {
	// One read of the credentials and one of the policy: the decision and
	// the call use them.
	src := s.dintero.TokenSource(account)
	policy := s.policy.Load()
	var who string
	switch {
	case call.Authorization != "":
		info.decision = decisionOwnToken
	case src == nil:
		info.decision = decisionNoCredentials
	case policy == nil:
		info.decision = decisionUnrestricted
	default:
		who = callerFrom(ctx).Identity
		info.decision = decisionDenied
		if policy.Allows(who, account, op) {
			info.decision = decisionAllowed
		}
	}
	s.opts.Counters.decision(op, account, info.decision, src != nil)
	switch info.decision {
	case decisionOwnToken:
		return nil
	case decisionDenied:
	default:
		call.TokenSource = src
		return nil
	}
	if who == "" {
		who = "a caller without a client certificate"
	}
	return failure(op, upstream.Meta{}, codes.PermissionDenied, ErrorReasonPolicyDenied,
		who+" may not use "+op+" on account "+account+" with the facade's credentials; bring your own Dintero token or ask for a policy rule").Err()
}

// DeleteClientGrant deletes a client grant at Dintero.
func (s *Server) DeleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, error) {
	return answer(ctx, req, s.deleteClientGrant)
}

// Authorize redeems a verification code at Dintero.
func (s *Server) Authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	return answer(ctx, req, s.authorize)
}

func (s *Server) deleteClientGrant(ctx context.Context, req *authv1.DeleteClientGrantRequest) (*authv1.DeleteClientGrantResponse, outcome, error) {
	out := outcome{oid: req.GetOid(), grantID: req.GetId()}
	if err := validateDeleteClientGrant(req); err != nil {
		return nil, out, err
	}
	call, err := callFrom(ctx, opDelete)
	if err != nil {
		return nil, out, err
	}
	if err := s.authenticate(ctx, &out, &call, opDelete, req.GetOid()); err != nil {
		return nil, out, err
	}
	g, meta, err := s.dintero.DeleteClientGrant(ctx, call, req.GetOid(), req.GetId())
	out.meta = meta
	if err != nil {
		if ue := (*upstream.Error)(nil); req.GetAllowMissing() && errors.As(err, &ue) && ue.Reason == nil && ue.StatusCode == http.StatusNotFound &&
			!errors.Is(err, upstream.ErrTokenFetch) && ue.Message != "" {
			// AIP-135's allow_missing: gone is what the caller wanted.
			// Only Dintero's own 404 to the DELETE says so, with the
			// error document its API documents for it (a message is
			// required): one from the fetch of the facade's token, or
			// a bare 404 (a proxy, a wrong --dintero-url), says nothing
			// of the grant.
			o := authv1.DeleteClientGrantResponse_OUTCOME_ALREADY_ABSENT
			if len(ue.Uncertain) > 0 {
				o = authv1.DeleteClientGrantResponse_OUTCOME_ABSENT_AFTER_UNCERTAIN_ATTEMPT
			}
			return &authv1.DeleteClientGrantResponse{Outcome: o}, out, nil
		}
		st := statusOf(opDelete, err, meta)
		s.noteRejected(&out, opDelete, req.GetOid(), err)
		return nil, out, withResource(st, "dintero.auth.v1.ClientGrant", "accounts/"+req.GetOid()+"/auth/client-grants/"+req.GetId(), req.GetOid()).Err()
	}
	s.opts.Counters.undecoded(opDelete, meta.Undecoded)
	a := new(deleteAnswer)
	grant := a.grant(g)
	if o := grant.GetOidc(); o.GetClientSecret() != "" && !s.opts.ReturnOIDCClientSecret {
		o.ClientSecret = ""
		out.withheld = withheldOIDCSecret
	}
	a.resp.Grant, a.resp.Outcome = grant, authv1.DeleteClientGrantResponse_OUTCOME_DELETED
	return &a.resp, out, nil
}

// deleteAnswer is DeleteClientGrant's answer with every message it points
// to, so that the answer is one allocation rather than six. The messages
// are never copied, only pointed to.
type deleteAnswer struct {
	resp  authv1.DeleteClientGrantResponse
	g     authv1.ClientGrant
	times [3]timestamppb.Timestamp
	oidc  authv1.Oidc
}

// grant translates Dintero's grant into a's messages. Timestamps become
// the same instant (a Timestamp has no zone); a missing one stays unset.
func (a *deleteAnswer) grant(g *upstream.Grant) *authv1.ClientGrant {
	out := &a.g
	out.Id, out.ClientId, out.Audience, out.Scope, out.Type = g.ID, g.ClientID, g.Audience, g.Scope, g.Type
	out.CreatedBy, out.DeletedBy = g.CreatedBy, g.DeletedBy
	out.CreatedAt, out.UpdatedAt, out.DeletedAt = timestampIn(&a.times[0], g.CreatedAt), timestampIn(&a.times[1], g.UpdatedAt), timestampIn(&a.times[2], g.DeletedAt)
	if g.OIDC != nil {
		a.oidc.ClientId, a.oidc.ClientSecret, a.oidc.Authority = g.OIDC.ClientID, g.OIDC.ClientSecret, g.OIDC.Authority
		out.Oidc = &a.oidc
	}
	return out
}

// timestampIn puts t into ts, as timestamppb.New does, and returns ts;
// nil for no t.
func timestampIn(ts *timestamppb.Timestamp, t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

func (s *Server) authorize(ctx context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, outcome, error) {
	out := outcome{oid: req.GetOid()}
	if err := validateAuthorize(req); err != nil {
		return nil, out, err
	}
	call, err := callFrom(ctx, opAuthorize)
	if err != nil {
		return nil, out, err
	}
	if err := s.authenticate(ctx, &out, &call, opAuthorize, req.GetOid()); err != nil {
		return nil, out, err
	}
	rd, meta, err := s.dintero.Authorize(ctx, call, upstream.AuthorizeParams{
		OID:              req.GetOid(),
		Audience:         req.GetAudience(),
		Scope:            req.GetScope(),
		ResponseType:     req.GetResponseType(),
		ClientID:         req.GetClientId(),
		State:            req.GetState(),
		RedirectURI:      req.GetRedirectUri(),
		VerificationCode: req.GetVerificationCode(),
		Connection:       req.GetConnection(),
	})
	out.meta = meta
	if oe := (*upstream.OAuthError)(nil); errors.As(err, &oe) && oe.State != "" && oe.State != req.GetState() {
		// OAuth's refusal is a redirect too, and one with another state
		// is no more this call's answer than a success would be. One
		// without a state stays OAuth's refusal: Dintero's documents do
		// not say that its refusals carry the state back.
		return nil, out, stateMismatch(meta).Err()
	}
	if err != nil {
		st := statusOf(opAuthorize, err, meta)
		s.noteRejected(&out, opAuthorize, req.GetOid(), err)
		return nil, out, withResource(st, "dintero.auth.v1.Account", "accounts/"+req.GetOid(), req.GetOid()).Err()
	}
	v := s.verificationToProto(rd.Verification)
	out.idToken, out.idTokenReason = resultName(v.GetResult()), rd.Verification.Reason
	s.opts.Counters.idToken(out.idToken, out.idTokenReason)
	state, query, fragment := takeApart(rd, req.GetVerificationCode())
	if state != req.GetState() {
		return nil, out, stateMismatch(meta).Err()
	}
	if v.GetResult() == authv1.IdTokenVerification_RESULT_INVALID && !req.GetAcceptUnverifiedIdToken() {
		return nil, out, idTokenInvalid(meta, v.GetReason()).Err()
	}
	return &authv1.AuthorizeResponse{
		Location: rd.Location, IdToken: rd.IDToken, AccessToken: rd.AccessToken,
		Query: query, Fragment: fragment, IdTokenVerification: v, State: state,
	}, out, nil
}

// credentialParams are the parameters of a redirect that are credentials:
// never repeated in the answer's query and fragment maps, which the proto
// does not redact. The tokens upstream takes out are among them, so that
// no change there lets one through; so is the request's own code, which
// a redirect has no reason to carry.
var credentialParams = []string{"id_token", "access_token", "code", "refresh_token", "verification_code"}

// stateParam is the redirect's parameter that carries the request's state.
const stateParam = "state"

// takeApart returns the redirect's state (its query's, else its
// fragment's) and copies of its query and fragment without the state and
// the credentials: a parameter named as one in any letter case, or whose
// name holds the request's verification code, is left out, and a value
// holding the code or a JWT is masked, whatever Dintero echoes where.
func takeApart(rd *upstream.Redirect, code string) (state string, query, fragment map[string]string) {
	state, ok := rd.Query[stateParam]
	if !ok {
		state = rd.Fragment[stateParam]
	}
	var m *mask.Masker // made only for a redirect with parameters to keep
	clean := func(params map[string]string) map[string]string {
		var out map[string]string
		for k, v := range params {
			if k == stateParam || slices.ContainsFunc(credentialParams, func(c string) bool { return strings.EqualFold(k, c) }) {
				continue
			}
			if m == nil {
				mk := mask.New(code)
				m = &mk
			}
			if m.Text(k) != k {
				continue
			}
			if out == nil {
				out = make(map[string]string, len(params))
			}
			out[k] = m.Text(v)
		}
		return out
	}
	return state, clean(rd.Query), clean(rd.Fragment)
}

// noteRejected counts and marks for the call's line an error that is
// Dintero refusing the facade's own client credentials.
func (s *Server) noteRejected(out *outcome, op, account string, err error) {
	var ue *upstream.Error
	if errors.Is(err, upstream.ErrTokenFetch) && errors.As(err, &ue) && ue.Reason == nil && credentialsRejected(ue) {
		out.credentialsRejected = true
		s.opts.Counters.rejected(op, account)
	}
}

// withResource adds a google.rpc.ResourceInfo to a NotFound: the resource
// Dintero does not have, by its Dintero path, cut as a metadata value is
// (a grant id may be as long as a request), so that the status stays
// within a client's header limits.
func withResource(st *status.Status, typ, name, owner string) *status.Status {
	if st.Code() != codes.NotFound {
		return st
	}
	if s, err := st.WithDetails(&errdetails.ResourceInfo{ResourceType: typ, ResourceName: cutN(name, maxMetaValue), Owner: "accounts/" + owner,
		Description: "Dintero has no such resource, or the token may not see it"}); err == nil {
		return s
	}
	return st
}

// idTokenReasons are the failed checks of idtoken, as the proto's enum.
var idTokenReasons = map[string]authv1.IdTokenVerification_Reason{
	idtoken.ReasonMalformed:      authv1.IdTokenVerification_REASON_MALFORMED,
	idtoken.ReasonAlgorithm:      authv1.IdTokenVerification_REASON_ALGORITHM,
	idtoken.ReasonUnknownKey:     authv1.IdTokenVerification_REASON_UNKNOWN_KEY,
	idtoken.ReasonSignature:      authv1.IdTokenVerification_REASON_SIGNATURE,
	idtoken.ReasonExpired:        authv1.IdTokenVerification_REASON_EXPIRED,
	idtoken.ReasonNotYetValid:    authv1.IdTokenVerification_REASON_NOT_YET_VALID,
	idtoken.ReasonIssuedInFuture: authv1.IdTokenVerification_REASON_ISSUED_IN_FUTURE,
	idtoken.ReasonAudience:       authv1.IdTokenVerification_REASON_AUDIENCE,
	idtoken.ReasonIssuer:         authv1.IdTokenVerification_REASON_ISSUER,
	idtoken.ReasonClaims:         authv1.IdTokenVerification_REASON_CLAIMS,
	idtoken.ReasonCritical:       authv1.IdTokenVerification_REASON_CRITICAL_HEADER,
}

// checks are the checks an id_token passes, as the answer lists them.
func (s *Server) checks() []authv1.IdTokenVerification_Check {
	c := []authv1.IdTokenVerification_Check{
		authv1.IdTokenVerification_CHECK_SIGNATURE, authv1.IdTokenVerification_CHECK_TIMES,
		authv1.IdTokenVerification_CHECK_AUDIENCE, authv1.IdTokenVerification_CHECK_SUBJECT,
	}
	if s.opts.IDTokenIssuer != "" {
		c = append(c, authv1.IdTokenVerification_CHECK_ISSUER)
	}
	return c
}

// verificationToProto translates the id_token's verification. A failed
// check idtoken names but the proto does not is REASON_CLAIMS, never
// REASON_UNSPECIFIED.
func (s *Server) verificationToProto(id idtoken.Verification) *authv1.IdTokenVerification {
	switch id.Result {
	case idtoken.Verified:
		c := id.Claims
		out := &authv1.IdTokenClaims{Sub: c.Subject, Email: c.Email, Name: c.Name, Iss: c.Issuer, Aud: c.Audience,
			Exp: timestamppb.New(c.Expires)}
		if !c.IssuedAt.IsZero() {
			out.Iat = timestamppb.New(c.IssuedAt)
		}
		if len(c.Extra) > 0 {
			// Decoded JSON always converts; were it not to, the typed
			// claims still stand.
			out.Extra, _ = structpb.NewStruct(c.Extra)
		}
		return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_VERIFIED, Claims: out, Checks: s.checks()}
	case idtoken.Invalid:
		r, ok := idTokenReasons[id.Reason]
		if !ok {
			r = authv1.IdTokenVerification_REASON_CLAIMS
		}
		return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_INVALID, Reason: r, Checks: s.checks()}
	}
	return &authv1.IdTokenVerification{Result: authv1.IdTokenVerification_RESULT_NOT_CHECKED}
}

// resultName is a verification result as logged and counted: verified,
// invalid or not_checked.
func resultName(r authv1.IdTokenVerification_Result) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "RESULT_"))
}

// callFrom takes what upstream needs from the call's metadata: the caller's
// authorization, which upstream checks and passes to Dintero, and the
// request id. An authorization that is there but blank is refused: the
// caller meant to bring a token (an unset $TOKEN, say), and the call must
// neither go out with an empty one nor fall back to the facade's
// credentials. So is more than one (two authorization metadata values, two
// Authorization headers through the gateway): the call would go out with
// one, where a proxy in front, or the caller, may have checked or meant
// the other.
func callFrom(ctx context.Context, op string) (upstream.Call, error) {
	var c upstream.Call
	// ValueFromIncomingContext reads one key; FromIncomingContext would
	// copy all the metadata on every call.
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		if len(v) > 1 {
			return c, statusOf(op, fmt.Errorf("%w: %d authorizations, want one", upstream.ErrBadAuthorization, len(v)), upstream.Meta{}).Err()
		}
		c.Authorization = strings.TrimSpace(v[0])
		if c.Authorization == "" {
			return c, statusOf(op, upstream.ErrBadAuthorization, upstream.Meta{}).Err()
		}
	}
	c.RequestID = requestIDFrom(ctx)
	return c, nil
}

// withheldOIDCSecret names the field withheld from a deleted grant.
var withheldOIDCSecret = []string{"oidc.client_secret"}
