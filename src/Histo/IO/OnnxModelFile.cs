using System.Text;

namespace Histo.IO;

/// <summary>
/// A minimal reader of ONNX model files (protobuf ModelProto): the graph's nodes (operator, inputs,
/// outputs, integer and float attributes) and its float initializers. Enough to move the weights of a
/// convolutional network into TorchSharp; no operator is executed here.
/// </summary>
public sealed class OnnxModelFile
{
    public sealed record Node(string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
        IReadOnlyDictionary<string, long[]> Ints, IReadOnlyDictionary<string, float> Floats);

    public sealed record Initializer(string Name, long[] Dims, float[] Data);

    public string Producer { get; private set; } = "";
    public List<Node> Nodes { get; } = new();
    public Dictionary<string, Initializer> Initializers { get; } = new();

    public static OnnxModelFile Read(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: ONNX model not found; rebuild Histo (the model comes with the build)");
        var model = new OnnxModelFile();
        try
        {
            var bytes = File.ReadAllBytes(path);
            foreach (var (field, value) in Fields(bytes))
            {
                if (field == 2) model.Producer = Encoding.UTF8.GetString(value.Span); // producer_name
                if (field == 7) model.ReadGraph(value);                             // graph
            }
        }
        catch (Exception e) when (e is not HistoException)
        {
            throw new HistoException($"{path}: not a readable ONNX model ({e.Message})", e);
        }
        return model;
    }

    void ReadGraph(ReadOnlyMemory<byte> graph)
    {
        foreach (var (field, value) in Fields(graph))
        {
            if (field == 1) Nodes.Add(ReadNode(value));
            else if (field == 5) { var t = ReadTensor(value); Initializers[t.Name] = t; }
        }
    }

    static Node ReadNode(ReadOnlyMemory<byte> node)
    {
        var inputs = new List<string>(); var outputs = new List<string>();
        var ints = new Dictionary<string, long[]>(); var floats = new Dictionary<string, float>();
        string op = "";
        foreach (var (field, value) in Fields(node))
        {
            switch (field)
            {
                case 1: inputs.Add(Encoding.UTF8.GetString(value.Span)); break;
                case 2: outputs.Add(Encoding.UTF8.GetString(value.Span)); break;
                case 4: op = Encoding.UTF8.GetString(value.Span); break;
                case 5:
                    string name = "";
                    long? i = null; float? f = null; var list = new List<long>();
                    foreach (var (af, av) in Fields(value))
                    {
                        if (af == 1) name = Encoding.UTF8.GetString(av.Span);
                        else if (af == 2) f = BitConverter.ToSingle(av.Span);
                        else if (af == 3) i = (long)Varint(av.Span);
                        else if (af == 8) list.AddRange(PackedVarints(av));
                    }
                    if (i is not null) ints[name] = [i.Value];
                    else if (list.Count > 0) ints[name] = list.ToArray();
                    if (f is not null) floats[name] = f.Value;
                    break;
            }
        }
        return new Node(op, inputs, outputs, ints, floats);
    }

    static Initializer ReadTensor(ReadOnlyMemory<byte> tensor)
    {
        var dims = new List<long>();
        string name = "";
        int dataType = 0;
        float[]? data = null;
        var floats = new List<float>();
        foreach (var (field, value) in Fields(tensor))
        {
            switch (field)
            {
                case 1: dims.AddRange(PackedVarints(value)); break;
                case 2: dataType = (int)Varint(value.Span); break;
                case 4: floats.AddRange(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(value.Span).ToArray()); break;
                case 8: name = Encoding.UTF8.GetString(value.Span); break;
                case 9: data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(value.Span).ToArray(); break;
            }
        }
        if (dataType != 1) throw new InvalidDataException($"initializer {name} has data type {dataType}; only float32 (1) is supported");
        return new Initializer(name, dims.ToArray(), data ?? floats.ToArray());
    }

    /// <summary>Top-level fields of a protobuf message; varint and fixed fields come back as their raw bytes.</summary>
    static IEnumerable<(int Field, ReadOnlyMemory<byte> Value)> Fields(ReadOnlyMemory<byte> message)
    {
        int pos = 0;
        while (pos < message.Length)
        {
            ulong key = Varint(message.Span, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: { int start = pos; Varint(message.Span, ref pos); yield return (field, message[start..pos]); break; }
                case 1: yield return (field, message.Slice(pos, 8)); pos += 8; break;
                case 2: { int length = (int)Varint(message.Span, ref pos); yield return (field, message.Slice(pos, length)); pos += length; break; }
                case 5: yield return (field, message.Slice(pos, 4)); pos += 4; break;
                default: throw new InvalidDataException($"unsupported protobuf wire type {wire}");
            }
        }
    }

    static IEnumerable<long> PackedVarints(ReadOnlyMemory<byte> value)
    {
        // A repeated int64 is either packed (length-delimited) or one varint per occurrence.
        int pos = 0;
        var list = new List<long>();
        while (pos < value.Length) list.Add((long)Varint(value.Span, ref pos));
        return list;
    }

    static ulong Varint(ReadOnlySpan<byte> span) { int pos = 0; return Varint(span, ref pos); }

    static ulong Varint(ReadOnlySpan<byte> span, ref int pos)
    {
        ulong result = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = span[pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }
}
