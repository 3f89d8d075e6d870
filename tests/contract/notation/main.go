// Command notation-contract runs notation-go, at the version Ratify v1.4.0 links, over what tenancy renders.
//
// Input (stdin, JSON): {"verifiers": [{"name", "trustPolicyDoc", "trustStores": {"<type>": {"<name>": [PEM]}},
// "reference", "signers": [{"name", "chain": [PEM leaf first], "key": PEM PKCS#8}]}]}.
// For each verifier it builds the verifier exactly as Ratify does (pkg/verifier/notation/notation.go:
// trustpolicy.Document decoded from `trustPolicyDoc`, verifier.NewWithOptions, which validates the document),
// serves the trust store the way Ratify's trustStore does (pkg/verifier/notation/truststore.go: certificates of
// the named store, keeping CA certificates and self-signed ones), then signs a descriptor with each signer
// through notation-go's own signer and verifies the envelope.
// Output (stdout, JSON): {"verifiers": [{"name", "error", "signers": [{"name", "verified", "error"}]}]}.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/notaryproject/notation-go"
	"github.com/notaryproject/notation-go/signer"
	"github.com/notaryproject/notation-go/verifier"
	"github.com/notaryproject/notation-go/verifier/trustpolicy"
	"github.com/notaryproject/notation-go/verifier/truststore"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type signerInput struct {
	Name  string   `json:"name"`
	Chain []string `json:"chain"`
	Key   string   `json:"key"`
}

type verifierInput struct {
	Name           string                         `json:"name"`
	TrustPolicyDoc json.RawMessage                `json:"trustPolicyDoc"`
	TrustStores    map[string]map[string][]string `json:"trustStores"`
	Reference      string                         `json:"reference"`
	Signers        []signerInput                  `json:"signers"`
}

type signerResult struct {
	Name     string `json:"name"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

type verifierResult struct {
	Name    string         `json:"name"`
	Error   string         `json:"error,omitempty"`
	Signers []signerResult `json:"signers"`
}

// pemStore answers GetCertificates from the PEM lists of one verifier, filtered as Ratify filters them.
type pemStore map[string]map[string][]string

func (s pemStore) GetCertificates(_ context.Context, storeType truststore.Type, name string) ([]*x509.Certificate, error) {
	var kept []*x509.Certificate
	for _, block := range s[string(storeType)][name] {
		certs, err := parseCertificates(block)
		if err != nil {
			return nil, err
		}
		for _, cert := range certs {
			if !cert.IsCA && cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
				continue // Ratify drops a non-CA certificate that is not self-signed
			}
			kept = append(kept, cert)
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("no certificates fetched in namedStore: %s", name)
	}
	return kept, nil
}

func parseCertificates(text string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

func parseKey(text string) (crypto.PrivateKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParsePKCS8PrivateKey(block.Bytes)
}

func sign(ctx context.Context, in signerInput, desc ocispec.Descriptor) ([]byte, error) {
	var chain []*x509.Certificate
	for _, text := range in.Chain {
		certs, err := parseCertificates(text)
		if err != nil {
			return nil, err
		}
		chain = append(chain, certs...)
	}
	key, err := parseKey(in.Key)
	if err != nil {
		return nil, err
	}
	s, err := signer.NewGenericSigner(key, chain)
	if err != nil {
		return nil, err
	}
	envelope, _, err := s.Sign(ctx, desc, notation.SignerSignOptions{SignatureMediaType: "application/jose+json"})
	return envelope, err
}

func run(ctx context.Context, in verifierInput) verifierResult {
	out := verifierResult{Name: in.Name, Signers: []signerResult{}}
	var doc trustpolicy.Document
	if err := json.Unmarshal(in.TrustPolicyDoc, &doc); err != nil {
		out.Error = err.Error()
		return out
	}
	v, err := verifier.NewWithOptions(&doc, pemStore(in.TrustStores), nil, verifier.VerifierOptions{})
	if err != nil {
		out.Error = err.Error()
		return out
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: digest.FromString(in.Reference), Size: int64(len(in.Reference))}
	for _, s := range in.Signers {
		result := signerResult{Name: s.Name}
		envelope, err := sign(ctx, s, desc)
		if err == nil {
			_, err = v.Verify(ctx, desc, envelope, notation.VerifierVerifyOptions{
				ArtifactReference:  in.Reference + "@" + desc.Digest.String(),
				SignatureMediaType: "application/jose+json",
			})
		}
		if err != nil {
			result.Error = err.Error()
		} else {
			result.Verified = true
		}
		out.Signers = append(out.Signers, result)
	}
	return out
}

func main() {
	var input struct {
		Verifiers []verifierInput `json:"verifiers"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	results := []verifierResult{}
	for _, in := range input.Verifiers {
		results = append(results, run(context.Background(), in))
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"verifiers": results}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
