package history

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestReadJepsenEDNIndependent(t *testing.T) {
	events, info, err := ReadJepsenEDN(openFixture(t, "independent.edn"))
	require.NoError(t, err)
	assert.False(t, info.Torn)
	require.Len(t, events, 14)
	for i, e := range events {
		assert.Equal(t, int64(i), e.Index)
	}
	assert.Equal(t, Event{Index: 0, Time: 1000, Process: 0, Type: Invoke, F: "write", Key: "0", Value: S1("1")}, events[0])
	assert.Equal(t, Event{Index: 5, Time: 2500, Process: 1, Type: OK, F: "read", Key: "1"}, events[5])
	assert.Equal(t, L("1", "2"), events[6].Value)
	assert.Equal(t, "0", events[6].Key)
	assert.Equal(t, "mismatch", events[8].Error)
	assert.Equal(t, Info, events[9].Type)
	assert.Equal(t, NemesisProcess, events[4].Process)
	assert.Equal(t, `[:isolated {"n1" #{"n2" "n3"}}]`, events[4].Value.S)
	assert.Equal(t, S1(":network-healed"), events[13].Value)
}

func TestReadJepsenEDNVector(t *testing.T) {
	events, _, err := ReadJepsenEDN(openFixture(t, "vector.edn"))
	require.NoError(t, err)
	require.Len(t, events, 6)
	assert.Equal(t, Event{Index: 3, Time: 40, Process: 1, Type: OK, F: "read", Value: S1("3"), Node: "n1"}, events[3])
	assert.Equal(t, L("3", "4"), events[4].Value, "a plain cas is not an independent tuple")
	assert.Equal(t, "", events[4].Key)
}

func TestReadJepsenEDNTimesFromOrder(t *testing.T) {
	in := "{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok :f :read :value 1 :time 5}\n"
	events, _, err := ReadJepsenEDN(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, []int64{0, 1}, []int64{events[0].Time, events[1].Time})
}

func TestReadJepsenEDNTorn(t *testing.T) {
	in := "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :re"
	events, info, err := ReadJepsenEDN(strings.NewReader(in))
	require.NoError(t, err)
	assert.True(t, info.Torn)
	assert.Len(t, events, 1)
}

func TestReadJepsenEDNErrors(t *testing.T) {
	for name, tc := range map[string]struct{ in, line string }{
		"bad type":      {"{:process 0 :type :invoke :f :read}\n{:process 0 :type :done :f :read}\n", "line 2"},
		"bad process":   {"{:process \"x\" :type :ok :f :read}", "line 1"},
		"no process":    {"{:type :ok :f :read}", "line 1"},
		"not a map":     {"{:process 0 :type :ok :f :read}\n[1 2]\n", "line 2"},
		"unclosed":      {"{:process 0 :type :ok :f :read\n{:process 1 :type :ok :f :read}\n", "line"},
		"stray closer":  {"{:process 0 :type :ok :f :read}}\n", "line 1"},
		"odd map":       {"{:process 0 :type}\n", "line 1"},
		"nested value":  {"{:process 0 :type :ok :f :read :value [[1] [2 [3]]]}", "line 1"},
		"map value":     {"{:process 0 :type :ok :f :read :value {:a 1}}", "line 1"},
		"bad time":      {"{:process 0 :type :ok :f :read :time 1.5}", "line 1"},
		"deep":          {strings.Repeat("[", 100), "nested deeper"},
		"empty keyword": {"{: 1}", "line 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadJepsenEDN(strings.NewReader(tc.in))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadHistory)
			assert.Contains(t, err.Error(), tc.line)
		})
	}
}

func TestReadJepsenLog(t *testing.T) {
	events, _, err := ReadJepsenLog(openFixture(t, "etcd_000.log"))
	require.NoError(t, err)
	require.Len(t, events, 170)
	assert.Equal(t, Event{Index: 0, Time: 0, Process: 0, Type: Invoke, F: "read"}, events[0])
	assert.Equal(t, Event{Index: 2, Time: 2, Process: 2, Type: Invoke, F: "write", Value: S1("4")}, events[2])
	assert.Equal(t, Event{Index: 18, Time: 18, Process: 2, Type: Invoke, F: "cas", Value: L("3", "0")}, events[18])
	var infos int
	for _, e := range events {
		if e.Type == Info {
			infos++
			assert.Equal(t, "timed-out", e.Error)
			assert.False(t, e.Value.IsNone(), "an info carries its invoke's value: %+v", e)
		}
	}
	assert.Equal(t, 16, infos)
}

func TestReadJepsenLogLines(t *testing.T) {
	in := "2024-01-01 INFO  jepsen.core - starting\n" +
		"INFO  jepsen.util - 3\t:invoke\t:read\tnil\n" +
		"INFO  jepsen.util - :nemesis\t:info\t:start\t\"Cut off {:n1 #{:n2}}\"\n" +
		"INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n" +
		"INFO  jepsen.util - 4\t:invoke\t:write\t[k1 5]\n" +
		"INFO  jepsen.util - 4\t:ok\t:write\t[k1 5]\n"
	events, _, err := ReadJepsenLog(strings.NewReader(in))
	require.NoError(t, err)
	require.Len(t, events, 5)
	assert.Equal(t, NemesisProcess, events[1].Process)
	assert.Equal(t, Info, events[2].Type, "a timed-out fail is indeterminate")
	assert.Equal(t, "", events[4].Key, "not every client value is a tuple: not independent")
	assert.Equal(t, L("k1", "5"), events[4].Value)

	for name, in := range map[string]string{
		"empty":       "nothing here\n",
		"bad type":    "INFO  jepsen.util - 3\t:done\t:read\tnil\n",
		"bad process": "INFO  jepsen.util - x\t:ok\t:read\tnil\n",
		"short":       "INFO  jepsen.util - 3\t:ok\n",
		"bad value":   "INFO  jepsen.util - 3\t:ok\t:read\t[1 2\n",
	} {
		_, _, err := ReadJepsenLog(strings.NewReader(in))
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrBadHistory, name)
	}
}

func TestReadJepsenEDNCompletionWithoutTuple(t *testing.T) {
	in := "{:process 0 :type :invoke :f :write :value [k1 3]}\n{:process 0 :type :info :f :write :value nil :error :crashed}\n" +
		"{:process 1 :type :invoke :f :read :value [k2 nil]}\n{:process 1 :type :ok :f :read :value [k2 5]}\n"
	events, _, err := ReadJepsenEDN(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, []string{"k1", "k1", "k2", "k2"}, []string{events[0].Key, events[1].Key, events[2].Key, events[3].Key})
	assert.Equal(t, Value{}, events[1].Value)
	assert.Equal(t, S1("5"), events[3].Value)
}

// Elle's list-append histories: transactions of [f key value] micro-operations.
func TestJepsenTransactions(t *testing.T) {
	in := `{:type :invoke, :f :txn, :value [[:append 1 2] [:r 2 nil]], :process 0, :time 10, :index 0}
{:type :ok, :f :txn, :value [[:append 1 2] [:r 2 [1 2]]], :process 0, :time 20, :index 1}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :time 30, :index 2}
{:type :fail, :f :txn, :value [[:r 1 nil]], :process 1, :time 40, :index 3}`
	events, _, err := ReadJepsenEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[1].Value.Kind != Txn || events[1].Key != "" {
		t.Fatalf("read %+v", events)
	}
	if got := events[1].Value.String(); got != "[[append 1 2] [r 2 [1 2]]]" {
		t.Errorf("ok value %s", got)
	}
	if got := events[2].Value.String(); got != "[[r 1 nil]]" {
		t.Errorf("invoke value %s", got)
	}
}
