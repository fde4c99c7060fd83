using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Histo.Tests;

/// <summary>
/// TorchSharp 0.107's finalizer race (README, Platform notes): a Scalar converted from a number on the fly is unreachable once
/// its handle is read, so a collection on another thread can free it while libtorch reads it. A freed Scalar's tag can read as
/// a symbolic number, whose copy increments a reference count at a garbage address: memory corruption far from the cause
/// (garbage tensor sizes, SIGSEGV in an atomic add, garbled stack traces: the DINO crashes of issue 10). Dispose scopes do
/// not hold Scalars (Histo.Bench torchsharp-gc-race --scoped crashes as the plain loop does). So Histo must never convert on
/// the fly: this test reads Histo.dll's IL and lists every call to Scalar's implicit conversion outside a static constructor
/// (kept Scalars are static fields), and every call to a TorchSharp overload that converts internally (<c>tensor * 2.0</c>,
/// <c>x.clamp(0, 1)</c>...), found by reading TorchSharp.dll's IL the same way.
/// </summary>
public class ScalarRaceTests
{
    [Fact]
    public void HistoNeverConvertsANumberToAScalarOnTheFly()
    {
        string histo = typeof(Histo.HistoException).Assembly.Location;
        string torchSharp = typeof(TorchSharp.Scalar).Assembly.Location;
        var converting = ConvertingMethods(torchSharp);
        Assert.Contains("Tensor.op_Multiply(Tensor,Double)", converting); // the scan sees what it must
        Assert.DoesNotContain("Tensor.op_Multiply(Tensor,Tensor)", converting);
        Assert.Contains("Tensor.op_Addition(Tensor,Tensor)", converting); // through add(Tensor), which converts its alpha of 1

        using var pe = new PEReader(File.OpenRead(histo));
        var md = pe.GetMetadataReader();
        var racy = new Dictionary<int, string>();
        foreach (var h in md.MemberReferences)
        {
            var m = md.GetMemberReference(h);
            if (m.GetKind() != MemberReferenceKind.Method || m.Parent.Kind != HandleKind.TypeReference) continue;
            string key = Key(md, md.GetString(md.GetTypeReference((TypeReferenceHandle)m.Parent).Name), md.GetString(m.Name),
                m.DecodeMethodSignature(new Names(md), null));
            if (key.StartsWith("Scalar.op_Implicit(", StringComparison.Ordinal) || converting.Contains(key))
                racy[MetadataTokens.GetToken(h)] = key;
        }
        var found = new List<string>();
        foreach (var th in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(th);
            foreach (var mh in type.GetMethods())
            {
                var method = md.GetMethodDefinition(mh);
                if (method.RelativeVirtualAddress == 0 || md.GetString(method.Name) == ".cctor") continue;
                foreach (int token in CallTokens(pe.GetMethodBody(method.RelativeVirtualAddress).GetILBytes()!))
                    if (racy.TryGetValue(token, out var what))
                        found.Add($"{md.GetString(type.Name)}.{md.GetString(method.Name)} calls {what}");
            }
        }
        Assert.True(found.Count == 0, $"{found.Count} on-the-fly Scalar conversions:\n" + string.Join("\n", found.Distinct().Order()));
    }

    /// <summary>
    /// TorchSharp methods that convert a number to a Scalar, in their own body or in a TorchSharp method they call (the
    /// closure: <c>a + b</c> is <c>op_Addition</c>, which calls <c>add(Tensor)</c>, which converts its alpha of 1), as
    /// "Type.Name(parameter types)".
    /// </summary>
    static HashSet<string> ConvertingMethods(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var converting = new HashSet<int>();
        var calls = new Dictionary<int, List<int>>();
        foreach (var h in md.MethodDefinitions)
        {
            var m = md.GetMethodDefinition(h);
            int token = MetadataTokens.GetToken(h);
            if (md.GetString(m.Name) == "op_Implicit" && md.GetString(md.GetTypeDefinition(m.GetDeclaringType()).Name) == "Scalar")
                converting.Add(token);
            if (m.RelativeVirtualAddress != 0)
                calls[token] = CallTokens(pe.GetMethodBody(m.RelativeVirtualAddress).GetILBytes()!).ToList();
        }
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (method, callees) in calls)
                if (!converting.Contains(method) && callees.Any(converting.Contains)) grew = converting.Add(method) || grew;
        }
        var result = new HashSet<string>();
        foreach (var h in md.MethodDefinitions)
        {
            var m = md.GetMethodDefinition(h);
            if (m.RelativeVirtualAddress == 0 || !converting.Contains(MetadataTokens.GetToken(h))) continue;
            result.Add(Key(md, md.GetString(md.GetTypeDefinition(m.GetDeclaringType()).Name), md.GetString(m.Name),
                m.DecodeSignature(new Names(md), null)));
        }
        return result;
    }

    static string Key(MetadataReader md, string type, string name, MethodSignature<string> signature) =>
        $"{type}.{name}({string.Join(",", signature.ParameterTypes)})";

    /// <summary>Tokens of call and callvirt instructions (0x28, 0x6F followed by a method token, table 0x06 or 0x0A).</summary>
    static IEnumerable<int> CallTokens(byte[] il)
    {
        for (int i = 0; i + 4 < il.Length; i++)
            if (il[i] is 0x28 or 0x6F && il[i + 4] is 0x06 or 0x0A)
                yield return BitConverter.ToInt32(il, i + 1);
    }

    /// <summary>Type names for signatures: the simple name, enough to tell TorchSharp's overloads apart.</summary>
    sealed class Names(MetadataReader md) : ISignatureTypeProvider<string, object?>
    {
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) =>
            reader.GetString(reader.GetTypeDefinition(handle).Name);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) =>
            reader.GetString(reader.GetTypeReference(handle).Name);
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[*]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) =>
            $"{genericType}<{string.Join(",", typeArguments)}>";
        public string GetGenericMethodParameter(object? context, int index) => "!!" + index;
        public string GetGenericTypeParameter(object? context, int index) => "!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
        public string GetTypeFromSerializedName(string name) => name;
        public PrimitiveTypeCode GetUnderlyingEnumType(string type) => PrimitiveTypeCode.Int32;
        public bool IsSystemType(string type) => type == "Type";
    }
}
