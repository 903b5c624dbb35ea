/*
 * Broker-side emulation of Amazon MSK IAM authentication, for tests only.
 *
 * Compiled by tests/local_servers/kafka/iam.py against the cached Kafka jars and
 * configured on the local broker's IAM listener (SASL_SSL + OAUTHBEARER). It accepts the
 * tokens that AWS's signer libraries (e.g. aws-msk-iam-sasl-signer-python) produce: the
 * base64url (no padding) encoding of a SigV4 presigned URL
 *
 *   https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect
 *       &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<key>%2F<date>%2F<region>
 *       %2Fkafka-cluster%2Faws4_request&X-Amz-Date=...&X-Amz-Expires=...
 *       [&X-Amz-Security-Token=...]&X-Amz-SignedHeaders=host&X-Amz-Signature=...
 *       &User-Agent=...
 *
 * and recomputes the signature from the one access key id and secret given as JAAS
 * options (accessKeyId, secretAccessKey). The session token of temporary credentials is
 * covered by the signature but not checked against anything. User-Agent is appended
 * after signing by the signer libraries, so it is not part of the canonical request.
 */
package kafkalocal;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerExtensionsValidatorCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public final class MskIamCallbackHandler implements AuthenticateCallbackHandler {
    public static final String ACCESS_KEY_ID_OPTION = "accessKeyId";
    public static final String SECRET_ACCESS_KEY_OPTION = "secretAccessKey";

    static final String ACTION = "kafka-cluster:Connect";
    static final String ALGORITHM = "AWS4-HMAC-SHA256";
    static final String SERVICE = "kafka-cluster";
    static final String TERMINATOR = "aws4_request";
    /** How far X-Amz-Date may lie in the future (clock skew), in seconds. */
    static final long MAX_CLOCK_SKEW_SECONDS = 300;
    /** SigV4's upper bound for X-Amz-Expires (7 days), in seconds. */
    static final long MAX_EXPIRES_SECONDS = 604_800;
    /** Hex SHA-256 of the empty body: botocore signs presigned https GETs with it. */
    static final String EMPTY_BODY_SHA256 =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /** Query parameters left out of the canonical request. */
    static final Set<String> UNSIGNED_PARAMS = Set.of("X-Amz-Signature", "User-Agent");

    private static final Logger LOG = LoggerFactory.getLogger(MskIamCallbackHandler.class);
    private static final DateTimeFormatter AMZ_DATE =
            DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'");

    private String accessKeyId;
    private String secretAccessKey;

    /** Thrown for any reason to reject a token; the message is sent to the client. */
    public static final class InvalidToken extends Exception {
        private static final long serialVersionUID = 1L;

        InvalidToken(String message) {
            super(message);
        }
    }

    /** A validated token. */
    public record Token(String value, String principalName, Long startTimeMs, long lifetimeMs)
            implements OAuthBearerToken {
        @Override
        public Set<String> scope() {
            return Set.of();
        }
    }

    @Override
    public void configure(
            Map<String, ?> configs, String saslMechanism, List<AppConfigurationEntry> jaas) {
        if (!"OAUTHBEARER".equals(saslMechanism)) {
            throw new IllegalArgumentException("unexpected SASL mechanism " + saslMechanism);
        }
        if (jaas == null || jaas.size() != 1) {
            throw new IllegalArgumentException("expected exactly one JAAS login module entry");
        }
        Map<String, ?> options = jaas.get(0).getOptions();
        configure(option(options, ACCESS_KEY_ID_OPTION), option(options, SECRET_ACCESS_KEY_OPTION));
    }

    /** Configure directly (used by tests of this class). */
    public void configure(String expectedAccessKeyId, String expectedSecretAccessKey) {
        this.accessKeyId = expectedAccessKeyId;
        this.secretAccessKey = expectedSecretAccessKey;
    }

    private static String option(Map<String, ?> options, String name) {
        Object value = options.get(name);
        if (!(value instanceof String) || ((String) value).isEmpty()) {
            throw new IllegalArgumentException("JAAS option " + name + " is required");
        }
        return (String) value;
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback callback : callbacks) {
            if (callback instanceof OAuthBearerValidatorCallback validator) {
                handleValidator(validator);
            } else if (callback instanceof OAuthBearerExtensionsValidatorCallback extensions) {
                // MSK ignores SASL extensions; accept whatever the client sends.
                extensions.inputExtensions().map().keySet().forEach(extensions::valid);
            } else if (callback instanceof OAuthBearerTokenCallback) {
                // Broker-side login (when used as sasl.login.callback.handler.class): the
                // broker has no token of its own; leaving it unset is allowed.
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    private void handleValidator(OAuthBearerValidatorCallback callback) {
        try {
            Token token = validate(callback.tokenValue(), Instant.now());
            callback.token(token);
        } catch (InvalidToken e) {
            // Kafka pastes the status into JSON unescaped, and the reason may quote the
            // client's input: keep it to printable ASCII without quotes or backslashes.
            String reason = e.getMessage().replaceAll("[^\\x20-\\x7e]|[\"\\\\]", "?");
            LOG.warn("Rejected MSK IAM token: {}", reason);
            callback.error("invalid_token: " + reason, null, null);
        }
    }

    /**
     * Validate one token.
     *
     * @param tokenValue the OAUTHBEARER token the client sent
     * @param now the current time
     * @return the token to authenticate as (principal = access key id)
     * @throws InvalidToken with the reason if the token is not acceptable
     */
    public Token validate(String tokenValue, Instant now) throws InvalidToken {
        if (accessKeyId == null) {
            throw new IllegalStateException("not configured");
        }
        if (tokenValue == null || tokenValue.isEmpty()) {
            throw new InvalidToken("empty token");
        }
        String url;
        try {
            url = utf8(Base64.getUrlDecoder().decode(tokenValue));
        } catch (IllegalArgumentException e) {
            throw new InvalidToken("token is not base64url: " + e.getMessage());
        }
        URI uri;
        try {
            uri = new URI(url);
        } catch (URISyntaxException e) {
            throw new InvalidToken("token is not a URL");
        }
        if (!"https".equals(uri.getScheme()) || uri.getHost() == null) {
            throw new InvalidToken("token is not an https URL");
        }
        String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
        if (!path.equals("/")) {
            throw new InvalidToken("URL path must be /");
        }
        if (uri.getRawQuery() == null || uri.getRawFragment() != null) {
            throw new InvalidToken("URL needs a query and no fragment");
        }
        Map<String, String> params = new HashMap<>();
        for (String pair : uri.getRawQuery().split("&", -1)) {
            int eq = pair.indexOf('=');
            String key = percentDecode(eq < 0 ? pair : pair.substring(0, eq));
            String value = eq < 0 ? "" : percentDecode(pair.substring(eq + 1));
            if (params.put(key, value) != null) {
                throw new InvalidToken("repeated query parameter " + key);
            }
        }

        String action = required(params, "Action");
        if (!action.equals(ACTION)) {
            throw new InvalidToken("Action must be " + ACTION + ", got " + action);
        }
        String algorithm = required(params, "X-Amz-Algorithm");
        if (!algorithm.equals(ALGORITHM)) {
            throw new InvalidToken("X-Amz-Algorithm must be " + ALGORITHM + ", got " + algorithm);
        }
        String[] credential = required(params, "X-Amz-Credential").split("/", -1);
        if (credential.length != 5) {
            throw new InvalidToken("X-Amz-Credential must be key/date/region/service/aws4_request");
        }
        String keyId = credential[0];
        String scopeDate = credential[1];
        String region = credential[2];
        String service = credential[3];
        if (!keyId.equals(accessKeyId)) {
            throw new InvalidToken("unknown access key id " + keyId);
        }
        if (!service.equals(SERVICE) || !credential[4].equals(TERMINATOR) || region.isEmpty()) {
            throw new InvalidToken("credential scope must be <date>/<region>/" + SERVICE + "/"
                    + TERMINATOR);
        }
        String amzDate = required(params, "X-Amz-Date");
        Instant signedAt;
        try {
            signedAt = LocalDateTime.parse(amzDate, AMZ_DATE).toInstant(ZoneOffset.UTC);
        } catch (DateTimeParseException e) {
            throw new InvalidToken("X-Amz-Date is not yyyyMMddTHHmmssZ");
        }
        if (!scopeDate.equals(amzDate.substring(0, 8))) {
            throw new InvalidToken("credential scope date does not match X-Amz-Date");
        }
        long expires;
        try {
            expires = Long.parseLong(required(params, "X-Amz-Expires"));
        } catch (NumberFormatException e) {
            throw new InvalidToken("X-Amz-Expires is not a number");
        }
        if (expires <= 0 || expires > MAX_EXPIRES_SECONDS) {
            throw new InvalidToken("X-Amz-Expires must be 1.." + MAX_EXPIRES_SECONDS);
        }
        if (signedAt.isAfter(now.plusSeconds(MAX_CLOCK_SKEW_SECONDS))) {
            throw new InvalidToken("token is signed in the future (X-Amz-Date " + amzDate + ")");
        }
        Instant expiry = signedAt.plusSeconds(expires);
        if (!expiry.isAfter(now)) {
            throw new InvalidToken("token expired at " + expiry);
        }
        if (!required(params, "X-Amz-SignedHeaders").equals("host")) {
            throw new InvalidToken("X-Amz-SignedHeaders must be host");
        }
        String signature = required(params, "X-Amz-Signature");

        String expected = signature(canonicalRequest(uri, params), amzDate, scopeDate, region);
        if (!MessageDigest.isEqual(
                expected.getBytes(StandardCharsets.US_ASCII),
                signature.getBytes(StandardCharsets.UTF_8))) {
            throw new InvalidToken("signature does not match");
        }
        return new Token(tokenValue, keyId, signedAt.toEpochMilli(), expiry.toEpochMilli());
    }

    /** The SigV4 canonical request botocore's SigV4QueryAuth builds for this URL. */
    static String canonicalRequest(URI uri, Map<String, String> params) {
        List<String[]> pairs = new ArrayList<>();
        for (Map.Entry<String, String> e : params.entrySet()) {
            if (!UNSIGNED_PARAMS.contains(e.getKey())) {
                pairs.add(new String[] {sigV4Encode(e.getKey()), sigV4Encode(e.getValue())});
            }
        }
        pairs.sort((a, b) -> a[0].equals(b[0]) ? a[1].compareTo(b[1]) : a[0].compareTo(b[0]));
        StringBuilder query = new StringBuilder();
        for (String[] pair : pairs) {
            if (query.length() > 0) {
                query.append('&');
            }
            query.append(pair[0]).append('=').append(pair[1]);
        }
        String host = uri.getHost().toLowerCase(java.util.Locale.ROOT);
        if (uri.getPort() != -1 && uri.getPort() != 443) {
            host += ":" + uri.getPort();
        }
        return String.join("\n", "GET", "/", query, "host:" + host, "", "host", EMPTY_BODY_SHA256);
    }

    private String signature(String canonicalRequest, String amzDate, String date, String region) {
        String scope = date + "/" + region + "/" + SERVICE + "/" + TERMINATOR;
        String stringToSign = String.join(
                "\n", ALGORITHM, amzDate, scope, hex(sha256(canonicalRequest)));
        byte[] key = ("AWS4" + secretAccessKey).getBytes(StandardCharsets.UTF_8);
        for (String part : new String[] {date, region, SERVICE, TERMINATOR}) {
            key = hmac(key, part);
        }
        return hex(hmac(key, stringToSign));
    }

    private static String required(Map<String, String> params, String name) throws InvalidToken {
        String value = params.get(name);
        if (value == null || value.isEmpty()) {
            throw new InvalidToken("missing query parameter " + name);
        }
        return value;
    }

    /** Decode %XX escapes; unlike URLDecoder, '+' stays '+'. */
    static String percentDecode(String raw) throws InvalidToken {
        byte[] out = new byte[raw.length()];
        int n = 0;
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '%') {
                if (i + 2 >= raw.length()
                        || Character.digit(raw.charAt(i + 1), 16) < 0
                        || Character.digit(raw.charAt(i + 2), 16) < 0) {
                    throw new InvalidToken("bad percent escape in URL");
                }
                out[n++] = (byte) Integer.parseInt(raw.substring(i + 1, i + 3), 16);
                i += 2;
            } else if (c > 0x7e) {
                throw new InvalidToken("non-ASCII character in URL");
            } else {
                out[n++] = (byte) c;
            }
        }
        return utf8(java.util.Arrays.copyOf(out, n));
    }

    /** SigV4 URI encoding: unreserved characters as-is, every other byte as %XX. */
    static String sigV4Encode(String value) {
        StringBuilder out = new StringBuilder();
        for (byte b : value.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '_' || c == '.' || c == '~') {
                out.append(c);
            } else {
                out.append('%').append(String.format("%02X", b & 0xff));
            }
        }
        return out.toString();
    }

    private static String utf8(byte[] bytes) throws InvalidToken {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new InvalidToken("token is not UTF-8");
        }
    }

    private static byte[] sha256(String text) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] hmac(byte[] key, String text) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(text.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    @Override
    public void close() {}
}
