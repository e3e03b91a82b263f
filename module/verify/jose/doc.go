// Package jose holds the stateless JOSE layer of token verification:
//
//   - Split / PreCheck: the compact JWS form only (three parts, canonical
//     unpadded base64url, a protected header that is one JSON object
//     without duplicate members; JWE and the JSON serialization refused),
//     every failure ReasonMalformedToken.
//   - CheckHeader: keys named by the token (jku, x5u, jwk, x5c), crit and
//     b64 refused (bad_header); alg read and none refused (bad_algorithm);
//     kid and typ read.
//   - ParseObject and friends: the JSON walker that finds a document's
//     top-level members in one pass and refuses repeated names at any
//     depth, so no two parsers can see different claims.
//   - Key, KeySet, ConvertJWK, ParseJWKS, ParsePublicKeyPEM: usable
//     verification keys, checked for strength (RSA size and exponent, ROCA,
//     EC points, HMAC length) and fit for an algorithm (Key.Fits).
//   - VerifySig / VerifySignature: the signature over parts already split,
//     through jwx's verifiers (PS* with the RFC 7518 salt length, pss.go).
//
// Nothing here holds state between calls; errors are *verr.Error.
package jose
