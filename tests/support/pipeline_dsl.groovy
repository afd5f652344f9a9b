// The declarative-pipeline side of tests/support/agent_pipeline.py: evaluates a Jenkinsfile on real
// Groovy with the DSL Jenkins' plugins provide, the way ModelInterpreter runs it, and asks the harness
// (Python, over stdin/stdout, one JSON object a line) to do whatever touches the agent: sh, checkout,
// credential binding, files, artifacts. Bound secrets never enter this JVM: the harness adds them to
// the environment of each `sh` process itself.
//
// Facts followed (cited from the plugin sources): pipeline-model-definition ModelInterpreter.groovy
// (stage failure, skipping, post order and combined result), CheckoutScript.groovy (implicit checkout
// whose variables wrap the rest), BuildCondition ordinals (always, changed, fixed, regression, aborted,
// success, unsuccessful, unstable, failure, notBuilt, cleanup), credentials-binding BindingStep
// ("Masking supported pattern matches of …"), workflow-cps EnvActionImpl (env reads see withEnv).
//
// Three kinds of failure: a step or Groovy error fails the build (as in Jenkins); a declarative
// syntax error fails it before any step runs; something Jenkins has but this DSL does not model
// raises NotModelled, which stops the harness itself, so a test can never pass by skipping it.

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.ast.AnnotatedNode
import org.codehaus.groovy.ast.AnnotationNode
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.ListExpression
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer
import org.codehaus.groovy.runtime.InvokerHelper

/** hudson.AbortException: the build log shows "ERROR: <message>". */
class StepFailure extends RuntimeException {
    StepFailure(String message) { super(message) }
}

/** A Jenkins feature this DSL does not model: the harness raises instead of guessing. */
class NotModelled extends RuntimeException {
    NotModelled(String message) { super(message) }
}

/** A declarative validation error (Jenkins reports these at compile time, before any stage). */
class DeclarativeError extends RuntimeException {
    DeclarativeError(String message) { super(message) }
}

class Channel {
    private final BufferedReader input
    private final PrintStream output

    Channel(InputStream input, OutputStream output) {
        this.input = new BufferedReader(new InputStreamReader(input, 'UTF-8'))
        this.output = new PrintStream(output, true, 'UTF-8')
    }

    Map receive() {
        String line = input.readLine()
        if (line == null) {
            throw new IllegalStateException('the harness closed the channel')
        }
        return (Map) new JsonSlurper().parseText(line)
    }

    void send(Map message) {
        output.println(JsonOutput.toJson(message))
        output.flush()
    }

    /** A request the harness answers; {"error": m} in the answer is a failed step. */
    Map call(Map request) {
        send(request)
        Map reply = receive()
        if (reply.error != null) {
            throw new StepFailure((String) reply.error)
        }
        return reply
    }

    void log(Object text) {
        send([op: 'log', text: String.valueOf(text)])
    }
}

class Results {
    // hudson.model.Result ordinals: a later one is worse.
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    static String worse(String a, String b) {
        if (a == null) return b
        if (b == null) return a
        return ORDER.indexOf(a) >= ORDER.indexOf(b) ? a : b
    }
}

/** RunWrapper as `currentBuild`. */
class CurrentBuild {
    private String res  // null while nothing has set it, as Run.getResult() during a build
    private final int number
    private final String fullProjectName
    private final String absoluteUrl
    String description

    CurrentBuild(int number, String fullProjectName, String absoluteUrl) {
        this.number = number
        this.fullProjectName = fullProjectName
        this.absoluteUrl = absoluteUrl
    }

    /** Run.setResult: the result only ever gets worse. */
    void setResult(Object value) {
        String r = String.valueOf(value)
        if (!Results.ORDER.contains(r)) {
            throw new IllegalArgumentException("No enum constant hudson.model.Result.${r}")
        }
        res = Results.worse(res, r)
    }

    /** `rawBuild.@result = …`: what ModelInterpreter does around each post condition. */
    void force(String r) { res = r }

    String getResult() { res }
    String getCurrentResult() { res ?: 'SUCCESS' }
    int getNumber() { number }
    String getId() { String.valueOf(number) }
    String getDisplayName() { "#${number}" }
    String getProjectName() { fullProjectName.tokenize('/').last() }
    String getFullProjectName() { fullProjectName }
    String getFullDisplayName() { "${fullProjectName.replace('/', ' \u00bb ')} #${number}" }
    String getAbsoluteUrl() { absoluteUrl }

    boolean resultIsBetterOrEqualTo(String other) {
        Results.ORDER.indexOf(getCurrentResult()) <= Results.ORDER.indexOf(other)
    }

    boolean resultIsWorseOrEqualTo(String other) {
        Results.ORDER.indexOf(getCurrentResult()) >= Results.ORDER.indexOf(other)
    }
}

/** `env`: reads see the effective environment (withEnv included); writes are build-wide. */
class EnvProxy {
    private final Dsl dsl

    EnvProxy(Dsl dsl) { this.dsl = dsl }

    @Override
    Object getProperty(String name) {
        if (name == 'environment') return dsl.effectiveEnv()
        return dsl.envGet(name)
    }

    @Override
    void setProperty(String name, Object value) { dsl.envSet(name, value) }

    Object getAt(String name) { dsl.envGet(name) }

    void putAt(String name, Object value) { dsl.envSet(name, value) }

    Map getEnvironment() { dsl.effectiveEnv() }
}

/** The SCM of a "Pipeline script from SCM" job (`scm`). */
class ScmRef {
    String toString() { 'scm' }
}

class CredentialsRef {
    final String credentialsId

    CredentialsRef(String id) { credentialsId = id }
}

class AgentSpec {
    String kind  // any, none, label
    String label
}

class StageModel {
    String name
    AgentSpec agent
    Closure environment
    Closure steps
    Map<String, Closure> post = [:]
}

class PipelineModel {
    AgentSpec agent
    Closure environment
    List<StageModel> stages
    Map<String, Closure> post = [:]
    boolean skipDefaultCheckout
    boolean disableConcurrentBuilds
    boolean skipStagesAfterUnstable
    Long timeoutSeconds
}

// -------------------------------------------------------------------------------------------------
// Collecting the declarative structure (closures are kept, run later in Jenkins' order)

/**
 * A collector. While its block is collected an unknown name is a declarative error; afterwards (a kept
 * closure runs later and a lookup falls through to this owner) it is an ordinary missing name.
 */
abstract class Section {
    boolean closed

    Object closedProperty(String name) {
        throw new MissingPropertyException("No such property: ${name} for class: WorkflowScript")
    }

    Object closedMethod(String name, Object args) {
        throw new MissingMethodException(name, Script, (Object[]) args)
    }
}

class Sections {
    static final String[] POST_CONDITIONS = ['always', 'changed', 'fixed', 'regression', 'aborted', 'success',
                                             'unsuccessful', 'unstable', 'failure', 'notBuilt', 'cleanup']

    static void collect(Closure body, Object section) {
        Closure c = (Closure) body.clone()
        c.delegate = section
        c.resolveStrategy = Closure.DELEGATE_ONLY  // nothing falls through to steps: this is structure
        c.call()
        if (section instanceof Section) ((Section) section).closed = true
    }

    static AgentSpec agent(Object arg) {
        if (arg instanceof AgentSpec) return (AgentSpec) arg
        if (arg instanceof Closure) {
            AgentSection s = new AgentSection()
            collect((Closure) arg, s)
            if (s.spec == null) throw new DeclarativeError('No agent type specified. Must be one of [any, label, none]')
            return s.spec
        }
        if (arg instanceof Map) throw new NotModelled("agent with a map (${arg}); use agent { label '…' }")
        throw new DeclarativeError("Invalid agent type \"${arg}\" specified. Must be one of [any, label, none]")
    }
}

class AgentSection extends Section {
    AgentSpec spec

    void label(Object l) {
        if (l instanceof Map) {
            Map m = (Map) l
            if (m.keySet() != ['label'] as Set) throw new NotModelled("agent { label(${m}) }: only the label is modelled")
            l = m.label
        }
        spec = new AgentSpec(kind: 'label', label: String.valueOf(l))
    }

    void node(Closure c) { Sections.collect(c, this) }

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        throw new NotModelled("agent type '${name}' (only any, none and label are modelled)")
    }
}

class PipelineSection extends Section {
    final PipelineModel model = new PipelineModel()
    private final Set<String> seen = []

    private void once(String name) {
        if (!seen.add(name)) throw new DeclarativeError("Multiple occurrences of the ${name} section")
    }

    AgentSpec getAny() { new AgentSpec(kind: 'any') }
    AgentSpec getNone() { new AgentSpec(kind: 'none') }

    void agent(Object arg) { once('agent'); model.agent = Sections.agent(arg) }

    void environment(Closure c) { once('environment'); model.environment = c }

    void options(Closure c) { once('options'); Sections.collect(c, new OptionsSection(model)) }

    void stages(Closure c) {
        once('stages')
        StagesSection s = new StagesSection()
        Sections.collect(c, s)
        if (s.stages.isEmpty()) throw new DeclarativeError('No stages specified')
        model.stages = s.stages
    }

    void post(Closure c) { once('post'); model.post = PostSection.collectPost(c) }

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        if (name in ['parameters', 'tools', 'triggers', 'libraries']) {
            throw new NotModelled("the pipeline section '${name}'")
        }
        throw new DeclarativeError("Undefined section \"${name}\"")
    }

    Object propertyMissing(String name) {
        if (closed) return closedProperty(name)
        throw new DeclarativeError("Undefined section \"${name}\"")
    }
}

class OptionsSection extends Section {
    private final PipelineModel model

    OptionsSection(PipelineModel model) { this.model = model }

    void disableConcurrentBuilds(Map args = [:]) {
        if (args.abortPrevious) throw new NotModelled('disableConcurrentBuilds(abortPrevious: true)')
        model.disableConcurrentBuilds = true
    }

    void skipDefaultCheckout(boolean skip = true) { model.skipDefaultCheckout = skip }

    void skipStagesAfterUnstable() { model.skipStagesAfterUnstable = true }

    void timeout(Map args) {
        Map units = [NANOSECONDS: 1e-9, MICROSECONDS: 1e-6, MILLISECONDS: 1e-3, SECONDS: 1, MINUTES: 60,
                     HOURS: 3600, DAYS: 86400]
        String unit = String.valueOf(args.unit ?: 'MINUTES')
        if (!units.containsKey(unit) || !(args.time instanceof Number)) {
            throw new DeclarativeError("Invalid timeout(${args})")
        }
        if (args.keySet() - ['time', 'unit']) throw new NotModelled("timeout options ${args.keySet() - ['time', 'unit']}")
        model.timeoutSeconds = Math.max(1L, Math.round(((Number) args.time) * units[unit]))
    }

    // Job properties that change nothing about how one build runs.
    void buildDiscarder(Object strategy) {}
    Map logRotator(Map args) { args }
    void durabilityHint(Object hint) {}
    void quietPeriod(Object seconds) {}
    void preserveStashes(Map args = [:]) {}

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        throw new NotModelled("the option '${name}'")
    }
}

class StagesSection extends Section {
    final List<StageModel> stages = []

    void stage(String name, Closure body) {
        if (stages.any { it.name == name }) throw new DeclarativeError("Duplicate stage name: \"${name}\"")
        StageSection s = new StageSection(name)
        Sections.collect(body, s)
        if (s.model.steps == null) throw new DeclarativeError("Stage \"${name}\" has no steps")
        stages << s.model
    }

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        throw new DeclarativeError("Expected a stage, got ${name}")
    }
}

class StageSection extends Section {
    final StageModel model = new StageModel()

    StageSection(String name) { model.name = name }

    AgentSpec getAny() { new AgentSpec(kind: 'any') }
    AgentSpec getNone() { new AgentSpec(kind: 'none') }

    void steps(Closure c) { model.steps = c }

    void environment(Closure c) { model.environment = c }

    void agent(Object arg) { model.agent = Sections.agent(arg) }

    void post(Closure c) { model.post = PostSection.collectPost(c) }

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        if (name in ['when', 'parallel', 'matrix', 'stages', 'input', 'tools', 'options', 'failFast']) {
            throw new NotModelled("the stage directive '${name}'")
        }
        throw new DeclarativeError("Unknown stage section \"${name}\"")
    }
}

class PostSection extends Section {
    final Map<String, Closure> conditions = [:]

    static Map<String, Closure> collectPost(Closure c) {
        PostSection s = new PostSection()
        Sections.collect(c, s)
        return s.conditions
    }

    Object methodMissing(String name, Object args) {
        if (closed) return closedMethod(name, args)
        Object[] a = (Object[]) args
        if (!(name in Sections.POST_CONDITIONS) || a.length != 1 || !(a[0] instanceof Closure)) {
            throw new DeclarativeError("Invalid condition \"${name}\" - valid conditions are ${Sections.POST_CONDITIONS}")
        }
        if (name in ['changed', 'fixed', 'regression']) {
            throw new NotModelled("the post condition '${name}' (it compares with earlier builds)")
        }
        conditions[name] = (Closure) a[0]
        return null
    }
}

/** `environment { }`: assignments in order; a later value may use an earlier one. */
class EnvironmentSection {
    final Map<String, Object> values = [:]
    private final Dsl dsl

    EnvironmentSection(Dsl dsl) { this.dsl = dsl }

    CredentialsRef credentials(String id) { new CredentialsRef(id) }

    EnvProxy getEnv() { dsl.env }

    Object propertyMissing(String name) {
        if (values.containsKey(name)) return values[name]
        return dsl.propertyMissing(name)
    }

    void propertyMissing(String name, Object value) { values[name] = value }

    Object methodMissing(String name, Object args) { dsl.invokeMethod(name, args) }
}

// -------------------------------------------------------------------------------------------------
// Shared libraries (pipeline-groovy-lib): `@Library('name[@version]') _` is read at compile time, as
// LibraryDecorator does, and removed there, so no Library class is needed; the harness retrieves each
// library (its global libraries are the controller's configuration) and the DSL loads its vars/*.groovy
// as global variables: `name(…)` calls the variable's call(…), as UserDefinedGlobalVariable does.

/** Collects (and strips) the @Library annotations of the Jenkinsfile while it compiles. */
class LibraryAnnotations extends CompilationCustomizer {
    final List<String> libraries = []

    LibraryAnnotations() { super(CompilePhase.CONVERSION) }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        new LibraryVisitor(source, libraries).visitClass(classNode)
    }
}

class LibraryVisitor extends ClassCodeVisitorSupport {
    static final List<String> NAMES = ['Library', 'org.jenkinsci.plugins.workflow.libs.Library']
    private final SourceUnit source
    private final List<String> found

    LibraryVisitor(SourceUnit source, List<String> found) {
        this.source = source
        this.found = found
    }

    protected SourceUnit getSourceUnit() { source }

    @Override
    void visitAnnotations(AnnotatedNode node) {
        List<AnnotationNode> libraryAnnotations = node.annotations.findAll { it.classNode.name in NAMES }
        libraryAnnotations.each { AnnotationNode annotation ->
            annotation.members.keySet().each { String member ->
                if (member != 'value') throw new NotModelled("@Library(${member}: …)")
            }
            Expression value = annotation.getMember('value')
            List<Expression> items = value instanceof ListExpression ? ((ListExpression) value).expressions : [value]
            items.each { Expression item ->
                if (!(item instanceof ConstantExpression)) throw new NotModelled("@Library(${item.text})")
                found << String.valueOf(((ConstantExpression) item).value)
            }
        }
        node.annotations.removeAll(libraryAnnotations)
        super.visitAnnotations(node)
    }
}

// -------------------------------------------------------------------------------------------------
// The steps and the interpreter

class Dsl {
    static final List<String> STEPS = ['archiveArtifacts', 'checkout', 'deleteDir', 'dir', 'echo', 'error',
                                       'fileExists', 'git', 'isUnix', 'pwd', 'readFile', 'script', 'sh', 'sleep',
                                       'stage', 'withCredentials', 'withEnv', 'writeFile']
    static final List<String> SYMBOLS = ['scmGit', 'string', 'usernameColonPassword', 'usernamePassword']
    // Steps Jenkins (with the plugins of jenkins-api.md §7b, and some common ones) has that are not modelled.
    static final List<String> NOT_MODELLED = [
        'bat', 'build', 'catchError', 'cleanWs', 'docker', 'input', 'junit', 'library', 'libraryResource', 'load', 'lock',
        'milestone', 'node', 'parallel', 'powershell', 'properties', 'retry', 'sshagent', 'stash',
        'timeout', 'timestamps', 'tool', 'unstash', 'waitUntil', 'warnError', 'withDockerContainer',
        'withDockerRegistry', 'withDockerServer', 'ws', 'file', 'sshUserPrivateKey', 'certificate',
        'dockerCert', 'zip', 'unzip', 'readJSON', 'writeJSON']

    final Channel channel
    final Map<String, String> baseEnv
    final Map<String, String> globals = [:]  // env.NAME = … (build-wide)
    final List<Map> layers = []  // nesting order: [env: map] or [bind: handle, variables: […]]
    final List<String> dirs = []
    final CurrentBuild currentBuild
    final EnvProxy env = new EnvProxy(this)
    final boolean hasScm
    final ScmRef scmRef = new ScmRef()
    final Map<String, Script> globalVars = [:]  // vars/NAME.groovy of the loaded libraries
    Script script
    boolean onNode
    String workspace

    Dsl(Channel channel, Map init) {
        this.channel = channel
        this.baseEnv = new LinkedHashMap<String, String>((Map) init.env)
        this.hasScm = (boolean) init.hasScm
        this.currentBuild = new CurrentBuild((int) init.number, (String) init.jobName, (String) init.buildUrl)
    }

    // -- shared libraries -------------------------------------------------------------------------
    /** Retrieve each library (the harness checks it out) and compile its vars as global variables. */
    void loadLibraries(List<String> libraries) {
        libraries.each { String spec ->
            Map reply = channel.call([op: 'library', spec: spec])
            ((Map<String, String>) reply.vars).each { String name, String text ->
                if (globalVars.containsKey(name)) throw new NotModelled("two libraries defining vars/${name}.groovy")
                CompilerConfiguration config = new CompilerConfiguration()
                config.scriptBaseClass = DelegatingScript.name
                GroovyShell shell = new GroovyShell(this.class.classLoader, new Binding(), config)
                DelegatingScript variable = (DelegatingScript) shell.parse(text, name)
                variable.setDelegate(this)  // steps, env and currentBuild resolve as in the Jenkinsfile
                globalVars[name] = variable
            }
        }
    }

    // -- environment ------------------------------------------------------------------------------
    Map<String, String> effectiveEnv() {
        Map<String, String> out = new LinkedHashMap<>(baseEnv)
        out.putAll(globals)
        layers.each { layer ->
            if (layer.env != null) {
                ((Map<String, String>) layer.env).each { k, v -> applyOverride(out, k, v) }
            }
        }
        return out
    }

    /** EnvVars.override: `PATH+ANY=dir` prepends dir to PATH; an empty value removes the variable. */
    static void applyOverride(Map<String, String> env, String key, String value) {
        int plus = key.indexOf('+')
        if (plus > 0) {
            String name = key.substring(0, plus)
            String old = env[name]
            env[name] = old ? value + File.pathSeparator + old : value
        } else if (value == null || value.isEmpty()) {
            env.remove(key)
        } else {
            env[key] = value
        }
    }

    Object envGet(String name) {
        checkNotSecret(name)
        return effectiveEnv()[name]
    }

    void envSet(String name, Object value) {
        if (value == null) {
            globals.remove(name)
        } else {
            globals[name] = String.valueOf(value)
        }
    }

    /** Bound secrets stay in the harness; reading one from Groovy is the interpolation Jenkins warns of. */
    void checkNotSecret(String name) {
        for (int i = layers.size() - 1; i >= 0; i--) {
            Map layer = layers[i]
            if (layer.env != null && ((Map) layer.env).containsKey(name)) return
            if (layer.variables != null && ((List) layer.variables).contains(name)) {
                throw new NotModelled("reading the bound variable ${name} from Groovy (Jenkins would " +
                    "hand the secret to Groovy; workflow-cps warns when it is interpolated into a step " +
                    "argument: use single quotes so the shell expands it)")
            }
        }
    }

    List<Map> layersForHarness() {
        List<Map> out = [[env: new LinkedHashMap(globals)]]
        layers.each { layer -> out << (layer.env != null ? [env: layer.env] : [bind: layer.bind]) }
        return out
    }

    Object withLayer(Map layer, Closure body) {
        layers << layer
        try {
            return body.call()
        } finally {
            layers.remove(layers.size() - 1)
        }
    }

    String getCwd() { dirs.isEmpty() ? workspace : dirs.last() }

    void requireNode(String step) {
        if (!onNode) {
            throw new StepFailure('Attempted to execute a step that requires a node context while \u2018agent ' +
                'none\u2019 was specified. Be sure to specify your own \u2018node { ... }\u2019 blocks when using ' +
                "\u2018agent none\u2019. (step: ${step})")
        }
    }

    // -- Groovy name resolution -------------------------------------------------------------------
    EnvProxy getEnv() { env }
    CurrentBuild getCurrentBuild() { currentBuild }
    Map getParams() { Collections.emptyMap() }

    ScmRef getScm() {
        if (!hasScm) {
            throw new IllegalStateException('\u2018checkout scm\u2019 is only available when using ' +
                '\u201cMultibranch Pipeline\u201d or \u201cPipeline script from SCM\u201d')
        }
        return scmRef
    }

    Object propertyMissing(String name) {
        if (name == 'out') return new PrintWriter(new LogWriter(channel), true)  // Script.println
        // getBinding()/getMetaClass(), not .binding/.metaClass: a DelegatingScript's properties are the delegate's
        if (script != null && script.getBinding().hasVariable(name)) return script.getBinding().getVariable(name)
        if (globalVars.containsKey(name)) return globalVars[name]
        checkNotSecret(name)
        Map<String, String> e = effectiveEnv()
        if (e.containsKey(name)) return e[name]  // Jenkins exposes environment variables as globals
        throw new MissingPropertyException("No such property: ${name} for class: WorkflowScript")
    }

    /** `NAME = value` without def: a variable of the script's binding, as in Jenkins. */
    void propertyMissing(String name, Object value) {
        script.getBinding().setVariable(name, value)
    }

    Object methodMissing(String name, Object args) {
        Object[] a = (Object[]) args
        if (script != null && script.getMetaClass().respondsTo(script, name, a)) {
            return script.getMetaClass().invokeMethod(script, name, a)  // a method the Jenkinsfile defines
        }
        if (globalVars.containsKey(name)) return InvokerHelper.invokeMethod(globalVars[name], 'call', a)
        if (name in NOT_MODELLED) throw new NotModelled("the step '${name}'")
        throw new NoSuchMethodError("No such DSL method '${name}' found among steps ${STEPS} or symbols ${SYMBOLS}")
    }

    static Map checkArgs(String step, Map args, Collection<String> allowed, Collection<String> required = []) {
        Set<String> unknown = (args.keySet() as Set<String>) - allowed
        if (unknown) {
            throw new IllegalArgumentException("WARNING: Unknown parameter(s) found for class type " +
                "'${step}': ${unknown.join(',')}")
        }
        List<String> missing = required.findAll { args[it] == null }
        if (missing) throw new IllegalArgumentException("${step}: missing required parameter(s) ${missing}")
        return args
    }

    void step(String name) { channel.log("[Pipeline] ${name}") }

    // -- steps ------------------------------------------------------------------------------------
    void echo(Object message) {
        step('echo')
        channel.log(message)
    }

    void println(Object message) { channel.log(message) }

    void print(Object message) { channel.log(message) }

    void error(Object message) {
        step('error')
        throw new StepFailure(String.valueOf(message))
    }

    Object script(Closure body) {
        step('script')
        return runBlock(body)
    }

    Object runBlock(Closure body) {
        Closure c = (Closure) body.clone()
        c.delegate = this
        c.resolveStrategy = Closure.DELEGATE_FIRST  // ModelInterpreter.delegateAndExecute
        return c.call()
    }

    Object stage(String name, Closure body) {
        channel.log('[Pipeline] stage')
        channel.log("[Pipeline] { (${name})")
        try {
            return body.call()
        } finally {
            channel.log('[Pipeline] }')
            channel.log('[Pipeline] // stage')
        }
    }

    Object sh(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [script: arg]
        checkArgs('sh', args, ['script', 'returnStdout', 'returnStatus', 'label', 'encoding'], ['script'])
        if (!(args.script instanceof CharSequence)) throw new IllegalArgumentException('sh: script must be a String')
        if (args.returnStdout && args.returnStatus) {
            throw new IllegalArgumentException('You may not select both returnStdout and returnStatus.')
        }
        if (args.encoding != null && !(String.valueOf(args.encoding).toUpperCase() in ['UTF-8', 'UTF8'])) {
            throw new NotModelled("sh(encoding: ${args.encoding})")
        }
        step('sh')
        requireNode('sh')
        Map reply = channel.call([op: 'sh', script: args.script.toString(), cwd: cwd, layers: layersForHarness(),
                                  returnStdout: (boolean) args.returnStdout])
        int status = (int) reply.status
        if (args.returnStatus) return status
        if (status != 0) throw new StepFailure("script returned exit code ${status}")
        return args.returnStdout ? reply.stdout : null
    }

    Object dir(String path, Closure body) {
        step('dir')
        requireNode('dir')
        String target = new File(path).isAbsolute() ? path : new File(cwd, path).path
        channel.log("Running in ${target}")
        dirs << target
        try {
            return body.call()
        } finally {
            dirs.remove(dirs.size() - 1)
        }
    }

    Object withEnv(List overrides, Closure body) {
        step('withEnv')
        Map<String, String> layer = [:]
        overrides.each { entry ->
            String s = String.valueOf(entry)
            int eq = s.indexOf('=')
            if (eq <= 0) throw new IllegalArgumentException("withEnv: \"${s}\" is not of the form NAME=VALUE")
            layer[s.substring(0, eq)] = s.substring(eq + 1)
        }
        return withLayer([env: layer], body)
    }

    // Binding symbols: maps the harness resolves (credentials-binding @Symbol names).
    Map usernamePassword(Map args) {
        checkArgs('usernamePassword', args, ['credentialsId', 'usernameVariable', 'passwordVariable'],
                  ['credentialsId', 'usernameVariable', 'passwordVariable'])
        return [kind: 'usernamePassword'] + args
    }

    Map string(Map args) {
        checkArgs('string', args, ['credentialsId', 'variable'], ['credentialsId', 'variable'])
        return [kind: 'string'] + args
    }

    Map usernameColonPassword(Map args) {
        checkArgs('usernameColonPassword', args, ['credentialsId', 'variable'], ['credentialsId', 'variable'])
        return [kind: 'usernameColonPassword'] + args
    }

    static Map bindingFromClass(Map args) {
        Map kinds = [UsernamePasswordMultiBinding: 'usernamePassword', StringBinding: 'string',
                     UsernamePasswordBinding: 'usernameColonPassword']
        String cls = String.valueOf(args['$class'])
        if (!kinds.containsKey(cls)) throw new NotModelled("the binding \$class: '${cls}'")
        return [kind: kinds[cls]] + args.findAll { k, v -> k != '$class' }
    }

    Object withCredentials(List bindings, Closure body) {
        step('withCredentials')
        List<Map> specs = bindings.collect { b ->
            if (!(b instanceof Map)) throw new IllegalArgumentException("withCredentials: not a binding: ${b}")
            Map m = (Map) b
            Map spec = m.containsKey('$class') ? bindingFromClass(m) : m
            if (spec.kind == null) throw new IllegalArgumentException("withCredentials: not a binding: ${b}")
            return spec.collectEntries { k, v -> [k, v == null ? null : String.valueOf(v)] }
        }
        Map reply = channel.call([op: 'bind', bindings: specs])
        return withLayer([bind: reply.handle, variables: reply.variables], body)
    }

    // git plugin: `git url:, branch:` (a local branch, LocalBranch extension) and `checkout …`.
    Map git(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [url: arg]
        checkArgs('git', args, ['url', 'branch', 'credentialsId', 'changelog', 'poll'], ['url'])
        step('git')
        requireNode('git')
        Map request = [op: 'checkout', kind: 'git', url: String.valueOf(args.url),
                       branches: ["*/${args.branch ?: 'master'}".toString()],
                       localBranch: String.valueOf(args.branch ?: 'master'),
                       credentialsId: args.credentialsId == null ? null : String.valueOf(args.credentialsId),
                       cwd: cwd]
        return (Map) channel.call(request).env
    }

    Map scmGit(Map args) {
        checkArgs('scmGit', args, ['branches', 'userRemoteConfigs', 'extensions', 'browser', 'gitTool'],
                  ['userRemoteConfigs'])
        return ['$class': 'GitSCM'] + args
    }

    Map checkout(Object arg) {
        step('checkout')
        requireNode('checkout')
        Object scmArg = arg
        if (arg instanceof Map && !((Map) arg).containsKey('$class')) {
            checkArgs('checkout', (Map) arg, ['scm', 'changelog', 'poll'], ['scm'])
            scmArg = ((Map) arg).scm
        }
        Map request
        if (scmArg instanceof ScmRef) {
            request = [op: 'checkout', kind: 'scm', cwd: cwd]
        } else if (scmArg instanceof Map && ((Map) scmArg)['$class'] == 'GitSCM') {
            Map s = (Map) scmArg
            checkArgs('GitSCM', s, ['$class', 'branches', 'userRemoteConfigs', 'extensions', 'browser', 'gitTool',
                                    'doGenerateSubmoduleConfigurations', 'submoduleCfg'], ['userRemoteConfigs'])
            if (s.extensions) throw new NotModelled("git extensions ${s.extensions}")
            List remotes = (List) s.userRemoteConfigs
            if (remotes.size() != 1) throw new NotModelled('a checkout with other than one remote')
            Map remote = checkArgs('UserRemoteConfig', (Map) remotes[0], ['url', 'credentialsId', 'name', 'refspec'],
                                   ['url'])
            if (remote.name || remote.refspec) throw new NotModelled('a remote name or refspec')
            List branches = ((List) (s.branches ?: [[name: '*/master']])).collect { String.valueOf(((Map) it).name) }
            request = [op: 'checkout', kind: 'GitSCM', url: String.valueOf(remote.url), branches: branches,
                       credentialsId: remote.credentialsId == null ? null : String.valueOf(remote.credentialsId),
                       cwd: cwd]
        } else {
            throw new NotModelled("checkout of ${scmArg} (only scm, scmGit(…) and [\$class: 'GitSCM', …])")
        }
        return (Map) channel.call(request).env
    }

    void archiveArtifacts(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [artifacts: arg]
        checkArgs('archiveArtifacts', args, ['artifacts', 'allowEmptyArchive', 'excludes', 'fingerprint',
                                             'onlyIfSuccessful', 'caseSensitive', 'defaultExcludes',
                                             'followSymlinks'], ['artifacts'])
        step('archiveArtifacts')
        requireNode('archiveArtifacts')
        if (args.onlyIfSuccessful && currentBuild.currentResult != 'SUCCESS') {
            channel.log('Skipped archiving because build is not successful')
            return
        }
        channel.call([op: 'archive', cwd: cwd, artifacts: String.valueOf(args.artifacts),
                      excludes: args.excludes == null ? null : String.valueOf(args.excludes),
                      allowEmpty: (boolean) args.allowEmptyArchive,
                      caseSensitive: args.caseSensitive == null ? true : (boolean) args.caseSensitive,
                      defaultExcludes: args.defaultExcludes == null ? true : (boolean) args.defaultExcludes])
    }

    void deleteDir() {
        step('deleteDir')
        requireNode('deleteDir')
        channel.call([op: 'deleteDir', cwd: cwd])
    }

    void writeFile(Map args) {
        checkArgs('writeFile', args, ['file', 'text', 'encoding'], ['file', 'text'])
        step('writeFile')
        requireNode('writeFile')
        channel.call([op: 'writeFile', cwd: cwd, file: String.valueOf(args.file), text: String.valueOf(args.text)])
    }

    String readFile(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [file: arg]
        checkArgs('readFile', args, ['file', 'encoding'], ['file'])
        step('readFile')
        requireNode('readFile')
        return (String) channel.call([op: 'readFile', cwd: cwd, file: String.valueOf(args.file)]).text
    }

    boolean fileExists(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [file: arg]
        checkArgs('fileExists', args, ['file'], ['file'])
        step('fileExists')
        requireNode('fileExists')
        return (boolean) channel.call([op: 'fileExists', cwd: cwd, file: String.valueOf(args.file)]).exists
    }

    boolean isUnix() { true }

    String pwd(Map args = [:]) {
        checkArgs('pwd', args, ['tmp'])
        requireNode('pwd')
        return args.tmp ? "${cwd}@tmp" : cwd
    }

    void sleep(Object arg) {
        Map args = arg instanceof Map ? (Map) arg : [time: arg]
        checkArgs('sleep', args, ['time', 'unit'], ['time'])
        Map units = [MILLISECONDS: 1L, SECONDS: 1000L, MINUTES: 60000L]
        String unit = String.valueOf(args.unit ?: 'SECONDS')
        if (!units.containsKey(unit)) throw new NotModelled("sleep(unit: ${unit})")
        step('sleep')
        Thread.sleep(((Number) args.time).longValue() * (long) units[unit])
    }

    // -- declarative interpretation (ModelInterpreter) ---------------------------------------------
    void pipeline(Closure body) {
        PipelineSection section = new PipelineSection()
        Sections.collect(body, section)
        PipelineModel model = section.model
        if (model.agent == null) throw new DeclarativeError('Missing required section "agent"')
        if (model.stages == null) throw new DeclarativeError('Missing required section "stages"')
        channel.call([op: 'options', disableConcurrentBuilds: model.disableConcurrentBuilds,
                      timeoutSeconds: model.timeoutSeconds])
        if (model.agent.kind != 'none' && model.stages.any { it.agent != null }) {
            throw new NotModelled('a stage agent inside a pipeline agent (a second workspace)')
        }
        Throwable firstError = null
        boolean postRun = false
        try {
            inAgent(model.agent, model, false) {
                withEnvironment(model.environment) {
                    firstError = runStages(model, firstError)
                    postRun = true
                    firstError = runPipelinePost(model, firstError)
                }
            }
        } catch (NotModelled e) {
            throw e
        } catch (Throwable e) {
            if (firstError == null) firstError = e
        } finally {
            if (!postRun) firstError = runPipelinePost(model, firstError)
        }
        if (firstError != null) throw firstError
    }

    Object inAgent(AgentSpec agent, PipelineModel model, boolean inStage, Closure body) {
        if (agent == null || agent.kind == 'none') return body.call()
        step('node')
        Map reply = channel.call([op: 'node', label: agent.kind == 'label' ? agent.label : null])
        workspace = (String) reply.workspace
        onNode = true
        try {
            return withLayer([env: reply.env]) {
                if (hasScm && !model.skipDefaultCheckout) {
                    Map vars = inStage ? checkout(scmRef) : stage('Declarative: Checkout SCM') { checkout(scmRef) }
                    return withLayer([env: vars.collectEntries { k, v -> [k, String.valueOf(v)] }], body)
                }
                return body.call()
            }
        } finally {
            onNode = false
        }
    }

    /** withCredentialsBlock, then withEnvBlock, as ModelInterpreter nests them. */
    Object withEnvironment(Closure environment, Closure body) {
        if (environment == null) return body.call()
        EnvironmentSection section = new EnvironmentSection(this)
        Closure c = (Closure) environment.clone()
        c.delegate = section
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
        List<Map> creds = []
        Map<String, String> plain = [:]
        section.values.each { k, v ->
            if (v instanceof CredentialsRef) {
                creds << [kind: 'environment', variable: k, credentialsId: ((CredentialsRef) v).credentialsId]
            } else if (v == null) {
                throw new IllegalArgumentException("One or more variables have some issues with their values: ${k}")
            } else {
                plain[k] = String.valueOf(v)
            }
        }
        Closure inner = { -> plain ? withLayer([env: plain], body) : body.call() }
        if (!creds) return inner.call()
        Map reply = channel.call([op: 'bind', bindings: creds])
        return withLayer([bind: reply.handle, variables: reply.variables], inner)
    }

    Throwable runStages(PipelineModel model, Throwable firstError) {
        model.stages.each { StageModel st ->
            channel.log('[Pipeline] stage')
            channel.log("[Pipeline] { (${st.name})")
            try {
                if (firstError != null) {
                    channel.log("Stage \"${st.name}\" skipped due to earlier failure(s)")
                } else if (model.skipStagesAfterUnstable && currentBuild.result == 'UNSTABLE') {
                    channel.log("Stage \"${st.name}\" skipped due to earlier stage(s) marking the build as unstable")
                } else {
                    inAgent(st.agent, model, true) {
                        withEnvironment(st.environment) { runSingleStage(st) }
                    }
                }
            } catch (NotModelled e) {
                throw e
            } catch (Throwable e) {
                if (firstError == null) firstError = e
            } finally {
                channel.log('[Pipeline] }')
                channel.log('[Pipeline] // stage')
            }
        }
        return firstError
    }

    void runSingleStage(StageModel st) {
        Throwable stageError = null
        try {
            runBlock(st.steps)
        } catch (NotModelled e) {
            throw e
        } catch (Throwable e) {
            stageError = e
        } finally {
            if (hasSatisfiedConditions(st.post, stageError)) {
                channel.log('Post stage')
                stageError = runPost(st.post, stageError)
            }
        }
        if (stageError != null) throw stageError
    }

    Throwable runPipelinePost(PipelineModel model, Throwable firstError) {
        if (!hasSatisfiedConditions(model.post, firstError)) return firstError
        Throwable error = firstError
        stage('Declarative: Post Actions') { error = runPost(model.post, firstError) }
        return error
    }

    String combinedResult(Throwable error) {
        Results.worse(currentBuild.currentResult, error == null ? 'SUCCESS' : 'FAILURE')
    }

    boolean satisfied(String condition, String result) {
        switch (condition) {
            case 'always': case 'cleanup': return true
            case 'success': return result == 'SUCCESS'
            case 'unsuccessful': return result != 'SUCCESS'
            case 'unstable': return result == 'UNSTABLE'
            case 'failure': return result == 'FAILURE'
            case 'aborted': return result == 'ABORTED'
            case 'notBuilt': return result == 'NOT_BUILT'
            default: throw new NotModelled("post condition ${condition}")
        }
    }

    boolean hasSatisfiedConditions(Map<String, Closure> post, Throwable error) {
        String result = combinedResult(error)
        return post.keySet().any { satisfied(it, result) }
    }

    /** runPostConditions: every satisfied condition in order; the first error is kept. */
    Throwable runPost(Map<String, Closure> post, Throwable stageError) {
        Sections.POST_CONDITIONS.each { String name ->
            Closure c = post[name]
            String original = currentBuild.result
            String logical = combinedResult(stageError)
            if (c == null || !satisfied(name, logical)) return
            currentBuild.force(logical)  // what the condition's steps see as currentBuild.result
            try {
                runBlock(c)
            } catch (NotModelled e) {
                throw e
            } catch (Throwable e) {
                channel.log("Error when executing ${name} post condition:")
                channel.log(describe(e))
                if (stageError == null) stageError = e
            } finally {
                if (currentBuild.currentResult == logical && logical != original) currentBuild.force(original)
            }
        }
        return stageError
    }

    static String describe(Throwable e) {
        if (e instanceof StepFailure) return "ERROR: ${e.message}"
        return "${e.getClass().name}: ${e.message}"
    }
}

/** `println` at the top level of the Jenkinsfile goes to the build log, as in Jenkins. */
class LogWriter extends Writer {
    private final Channel channel
    private final StringBuilder pending = new StringBuilder()

    LogWriter(Channel channel) { this.channel = channel }

    void write(char[] buf, int off, int len) { pending.append(buf, off, len) }

    void flush() {
        String text = pending.toString()
        pending.setLength(0)
        if (text) channel.log(text.endsWith('\n') ? text.substring(0, text.length() - 1) : text)
    }

    void close() { flush() }
}

// -------------------------------------------------------------------------------------------------
// Main: receive the build, run the Jenkinsfile, report the result.

Channel channel = new Channel(System.in, new FileOutputStream(FileDescriptor.out))
System.setOut(System.err)  // stray output must not corrupt the channel
Map init = channel.receive()
Dsl dsl = new Dsl(channel, init)
String result
try {
    CompilerConfiguration config = new CompilerConfiguration()
    config.scriptBaseClass = DelegatingScript.name
    LibraryAnnotations libraries = new LibraryAnnotations()
    config.addCompilationCustomizers(libraries)
    GroovyShell shell = new GroovyShell(this.class.classLoader, new Binding(), config)
    DelegatingScript script = (DelegatingScript) shell.parse((String) init.script, 'WorkflowScript')
    script.setDelegate(dsl)
    dsl.script = script
    dsl.loadLibraries(libraries.libraries)
    channel.log('[Pipeline] Start of Pipeline')
    script.run()
    channel.log('[Pipeline] End of Pipeline')
    result = dsl.currentBuild.currentResult
} catch (NotModelled e) {
    channel.send([op: 'not_modelled', what: e.message])
    System.exit(3)
} catch (MultipleCompilationErrorsException e) {
    channel.log(e.message.trim())
    result = 'FAILURE'
} catch (DeclarativeError e) {
    channel.log("WorkflowScript: ${e.message}")
    result = 'FAILURE'
} catch (Throwable e) {
    channel.log('[Pipeline] End of Pipeline')
    channel.log(Dsl.describe(e))
    result = Results.worse(dsl.currentBuild.result, 'FAILURE')
}
channel.call([op: 'finish', result: result])
System.exit(0)
