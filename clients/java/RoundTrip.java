// Round-trips frames through the classes Modelina generates for Java with its Jackson preset:
// each frame is decoded into its model class and encoded again, and the result must be the frame
// it came from. Members whose value is null count as absent on both sides: the contract makes
// every nullable member optional with `default: null`, and the models leave nulls out.
//
// Usage: java -cp MODELS:JACKSON RoundTrip FRAMES.json, where FRAMES.json is a list of
// {"model": "RoomChatMessage", "frame": {...}}. Exits 1 at the first frame that does not survive.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

public class RoundTrip {
    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        JsonNode cases = mapper.readTree(new File(args[0]));
        int checked = 0;
        for (JsonNode c : cases) {
            String model = c.get("model").asText();
            JsonNode frame = c.get("frame");
            Class<?> type = Class.forName("roomchat." + model);
            Object decoded = mapper.treeToValue(frame, type);
            JsonNode encoded = mapper.valueToTree(decoded);
            JsonNode expected = withoutNulls(frame.deepCopy());
            JsonNode actual = withoutNulls(encoded);
            if (!expected.equals(actual)) {
                System.err.println(model + ": " + frame + " came back as " + encoded);
                System.exit(1);
            }
            checked++;
        }
        System.out.println("round-tripped " + checked + " frames");
    }

    static JsonNode withoutNulls(JsonNode node) {
        if (node instanceof ObjectNode) {
            ObjectNode object = (ObjectNode) node;
            List<String> nulls = new ArrayList<>();
            Iterator<Map.Entry<String, JsonNode>> fields = object.fields();
            while (fields.hasNext()) {
                Map.Entry<String, JsonNode> field = fields.next();
                if (field.getValue().isNull()) {
                    nulls.add(field.getKey());
                } else {
                    withoutNulls(field.getValue());
                }
            }
            object.remove(nulls);
        } else if (node instanceof ArrayNode) {
            for (JsonNode item : node) {
                withoutNulls(item);
            }
        }
        return node;
    }
}
